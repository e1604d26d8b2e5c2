namespace Elastic.Grains.Devices;

/// <summary>The devices a silo offers: CUDA devices when present, otherwise virtual CPU devices.</summary>
public sealed record SiloDeviceOptions
{
    /// <summary><c>cpu</c> or <c>cuda</c>.</summary>
    public string Kind { get; init; } = "cpu";
    public int Count { get; init; } = 2;
    /// <summary>How reports name these devices: "cpu", or "cuda: " and the GPU's model.</summary>
    public string Model { get; init; } = "cpu";
    /// <summary>With kind cuda: the CUDA device each of this silo's devices runs on (several may share one GPU).</summary>
    public IReadOnlyList<int> CudaIndices { get; init; } = [];
    /// <summary>Memory budget per device (the planner's limit for model state and activations).</summary>
    public long MemoryMiB { get; init; } = 4096;
    /// <summary>Intra-op threads a CPU device is sized for (a job's spec fixes the count it actually uses).</summary>
    public int ThreadsPerDevice { get; init; } = 1;
}
