using System.Globalization;
using System.Text.Json;

namespace Elastic.Planning.Hardware;

/// <summary>
/// What a silo measured of its devices when it started (matmul TFLOPS by precision, memory bandwidth, the cost of a kernel) and
/// of its links (between its device threads, and over the data plane's sockets): advertised in silo metadata as JSON, and laid
/// over the device's published profile (<see cref="Apply"/>) so that the planner predicts with what the silo actually does.
/// </summary>
public sealed record DeviceMeasurement
{
    public required IReadOnlyDictionary<string, double> MatmulTflops { get; init; }
    public double MemoryBandwidthGBs { get; init; }
    public double KernelOverheadMicroseconds { get; init; }
    /// <summary>What the engine reached of the rate these figures predict, on a reference step (<see cref="DeviceProfile.EngineEfficiency"/>).</summary>
    public double EngineEfficiency { get; init; } = 1;

    /// <summary>What a virtual shard's kernel costs beyond a whole matmul's (<see cref="DeviceProfile.ShardKernelMicroseconds"/>).</summary>
    public double ShardKernelMicroseconds { get; init; }

    /// <summary>The host's cores, where the devices are CPU devices that share them; 0 otherwise.</summary>
    public int SharedCores { get; init; }

    public LinkProfile? IntraNode { get; init; }
    public LinkProfile? InterNode { get; init; }

    /// <summary>How long the measurement took (it runs once per silo process, before the silo joins).</summary>
    public double Seconds { get; init; }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>The profile with the measured figures in place of the assumed ones; its published peaks stay (MFU divides by them).</summary>
    public DeviceProfile Apply(DeviceProfile profile) => profile with
    {
        SustainedTflops = MatmulTflops,
        MemoryBandwidthGBs = MemoryBandwidthGBs > 0 ? MemoryBandwidthGBs : profile.MemoryBandwidthGBs,
        KernelOverheadMicroseconds = KernelOverheadMicroseconds > 0 ? KernelOverheadMicroseconds : profile.KernelOverheadMicroseconds,
        EngineEfficiency = EngineEfficiency is > 0 and <= 1 ? EngineEfficiency : 1,
        SharedCores = SharedCores,
        ShardKernelMicroseconds = ShardKernelMicroseconds >= 0 ? ShardKernelMicroseconds : 0,
        IntraNode = IntraNode ?? profile.IntraNode,
        InterNode = InterNode ?? profile.InterNode,
        Calibrated = true,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The measurement a silo advertised, or null where it advertised none or something unreadable (the profile's figures are used then).</summary>
    public static DeviceMeasurement? FromJson(string? json)
    {
        if (string.IsNullOrWhiteSpace(json)) return null;
        try
        {
            var m = JsonSerializer.Deserialize<DeviceMeasurement>(json, Json);
            return m is not null && m.MatmulTflops.Count > 0 && m.MatmulTflops.Values.All(v => v > 0 && double.IsFinite(v)) ? m : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        var parts = new List<string>
        {
            $"matmul {string.Join(", ", MatmulTflops.Select(t => string.Create(inv, $"{t.Key} {t.Value:0.###} TFLOPS")))}",
            string.Create(inv, $"memory {MemoryBandwidthGBs:0.#} GB/s"),
            string.Create(inv, $"kernel {KernelOverheadMicroseconds:0.#} us (a virtual shard's {ShardKernelMicroseconds:0.#} us more)"),
            string.Create(inv, $"engine {EngineEfficiency:P0} of that on a reference step"),
        };
        if (SharedCores > 0) parts.Add(string.Create(inv, $"{SharedCores} cores shared by the devices"));
        if (IntraNode is { } i) parts.Add(string.Create(inv, $"between devices {i.BusBandwidthGBs:0.##} GB/s, {i.LatencyMicroseconds:0} us"));
        if (InterNode is { } n) parts.Add(string.Create(inv, $"between silos {n.BusBandwidthGBs:0.##} GB/s, {n.LatencyMicroseconds:0} us"));
        return string.Join("; ", parts) + string.Create(inv, $" (measured in {Seconds:0.0} s)");
    }
}
