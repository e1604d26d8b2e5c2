namespace Elastic.Planning.Hardware;

/// <summary>
/// What the cost model needs to know of one kind of device: its memory, its dense peak per precision and the share of it
/// matmuls sustain, its memory bandwidth (what elementwise kernels and the optimizer are bound by), the fixed cost of a
/// kernel, and the links between devices of one node (silo) and between nodes. Published figures (<see cref="HardwareProfiles"/>)
/// or a silo's own measurements.
/// </summary>
public sealed record DeviceProfile
{
    public required string Name { get; init; }

    /// <summary>Substrings of a device's model name (as a silo reports it) that this profile describes.</summary>
    public IReadOnlyList<string> Matches { get; init; } = [];

    public string Description { get; init; } = "";

    /// <summary>Whether the figures are a vendor's published ones (MFU is reported only against those).</summary>
    public bool Published { get; init; } = true;

    /// <summary>Whether the device's memory is the host's (a CPU): host staging buffers then count against it.</summary>
    public bool HostMemory { get; init; }

    public double MemoryGiB { get; init; }

    /// <summary>Dense peak TFLOPS by <c>runtime.precision</c> (fp32, tf32, bf16).</summary>
    public required IReadOnlyDictionary<string, double> PeakTflops { get; init; }

    public double MemoryBandwidthGBs { get; init; }

    /// <summary>The share of the peak a large matmul sustains.</summary>
    public double MatmulEfficiency { get; init; } = 1;

    /// <summary>Matmul TFLOPS measured on the device by precision (<see cref="DeviceMeasurement"/>): where present, they replace peak x efficiency.</summary>
    public IReadOnlyDictionary<string, double> SustainedTflops { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// The share of the matmul rate and memory bandwidth the training engine reaches (its dropout streams, the gradient tree,
    /// kernels the model does not count), fitted by a silo's calibration to reference steps; 1 where nothing was measured.
    /// </summary>
    public double EngineEfficiency { get; init; } = 1;

    /// <summary>Cores the node's devices share (CPU devices: each device thread's intra-op threads run on the host's cores); 0 when devices do not share compute.</summary>
    public int SharedCores { get; init; }

    /// <summary>Whether a silo's own measurements replaced the assumed figures (throughput, memory bandwidth, kernel cost, links).</summary>
    public bool Calibrated { get; init; }

    /// <summary>What every kernel costs beyond its arithmetic and memory traffic (launch, tail, synchronization; calibrated: as the engine launches it).</summary>
    public double KernelOverheadMicroseconds { get; init; }

    /// <summary>
    /// What each kernel of a virtual shard beyond a region's first costs on top of <see cref="KernelOverheadMicroseconds"/>: the
    /// price of splitting a matmul into S/tp smaller ones (calibrated from two reference steps that differ only in S; 0 otherwise).
    /// </summary>
    public double ShardKernelMicroseconds { get; init; }

    /// <summary>Devices in one node: the most a silo offers, and the widest tensor-parallel group.</summary>
    public int DevicesPerNode { get; init; } = 1;

    /// <summary>Between devices of one node (one silo): NVLink, or device threads of one process.</summary>
    public required LinkProfile IntraNode { get; init; }

    /// <summary>Between nodes (silos): the network, per device.</summary>
    public required LinkProfile InterNode { get; init; }

    public IReadOnlyList<string> Sources { get; init; } = [];

    public long MemoryBytes => (long)(MemoryGiB * (1L << 30));

    /// <summary>The dense peak in TFLOPS at <paramref name="precision"/> (what MFU divides by); fp32's where the precision is not given.</summary>
    public double Peak(string precision) => PeakTflops.TryGetValue(precision, out var peak) ? peak : PeakTflops.GetValueOrDefault("fp32");

    /// <summary>The FLOP/s a matmul sustains at <paramref name="precision"/>: measured where it was, else the peak times the efficiency.</summary>
    public double MatmulFlops(string precision) =>
        (SustainedTflops.TryGetValue(precision, out var measured) ? measured
            : !PeakTflops.ContainsKey(precision) && SustainedTflops.TryGetValue("fp32", out var fp32) ? fp32
            : Peak(precision) * MatmulEfficiency) * 1e12;
}

/// <summary>A link as a ring collective sees it: bus bandwidth per device and the latency of one hop.</summary>
public sealed record LinkProfile
{
    public double BusBandwidthGBs { get; init; }
    public double LatencyMicroseconds { get; init; }

    /// <summary>Seconds to move <paramref name="busBytes"/> per device in <paramref name="hops"/> steps, each paying the latency.</summary>
    public double Seconds(double busBytes, int hops) => busBytes / (BusBandwidthGBs * 1e9) + hops * LatencyMicroseconds * 1e-6;
}
