using System.Globalization;

namespace Elastic.Jobs.Reports;

/// <summary>
/// What one device holds for a job, in bytes, by kind: the tensors the engine keeps (parameters, gradient buffers, AdamW
/// moments), host staging (checkpoint captures, collective wire buffers), and the activations the micro-batches in flight
/// keep for backward, which autograd holds out of the engine's sight and are estimated from the model (<c>Elastic.Planning.MemoryEstimate</c>).
/// </summary>
public sealed record DeviceMemory(long Parameters, long Gradients, long OptimizerState, long ActivationsEstimate, long Staging)
{
    public long Total => Parameters + Gradients + OptimizerState + ActivationsEstimate + Staging;

    /// <summary>The heavier of two devices (by total), for a job's busiest device.</summary>
    public static DeviceMemory? Heavier(DeviceMemory? a, DeviceMemory? b) => a is null ? b : b is null || a.Total >= b.Total ? a : b;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{MiB(Total)} (parameters {MiB(Parameters)}, gradients {MiB(Gradients)}, optimizer state {MiB(OptimizerState)}, activations ~{MiB(ActivationsEstimate)}, staging {MiB(Staging)})");

    private static string MiB(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):0.#} MiB");
}
