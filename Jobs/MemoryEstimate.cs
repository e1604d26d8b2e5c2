using System.Globalization;

namespace Elastic.Jobs;

/// <summary>
/// What one device needs to run a spec, in bytes (fp32), from the spec and the data-parallel width alone:
/// parameters, gradient buffers (the flat sum plus the pairwise tree's partial sums), AdamW moments, the
/// activations one micro-batch keeps for backward, and host staging (checkpoint captures, the all-reduce
/// wire buffer). An estimate meant to refuse what cannot fit before anything starts, not a profile: it
/// counts the tensors the engine holds and the activations autograd saves, and rounds nothing down.
/// </summary>
public sealed record MemoryEstimate(long Parameters, long ParameterBytes, long GradientBytes, long OptimizerBytes, long ActivationBytes, long StagingBytes)
{
    private const long Fp32 = 4;

    public long TotalBytes => ParameterBytes + GradientBytes + OptimizerBytes + ActivationBytes + StagingBytes;
    public long TotalMiB => (TotalBytes + (1 << 20) - 1) >> 20;

    /// <param name="dp">Data-parallel replicas: each holds a whole model and runs micro-batches / dp of them.</param>
    public static MemoryEstimate For(TrainingSpec spec, int dp = 1)
    {
        var m = spec.Model;
        long d = m.DModel, f = m.FfnSize, v = m.Vocab, t = m.Context, b = spec.Batch.Micro, h = m.Heads, layers = m.Layers;
        var perLayer = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
        var parameters = v * d + t * d + layers * perLayer + 2 * d + (m.TiedEmbeddings ? 0 : v * d);

        // The step's sum and one partial sum per level of the micro-batch tree this replica reduces.
        var local = Math.Max(1, spec.Batch.MicroBatchesPerStep / Math.Max(1, dp));
        var gradientBuffers = 2 + (long)Math.Ceiling(Math.Log2(local));

        // Saved for backward per layer: the block input, both LayerNorm outputs, q/k/v, the attention output,
        // the residual, two projections with their dropout masks, the MLP's two wide activations, and the
        // attention weights of an unfused kernel; then the logits with their softmax and gradient.
        var perLayerActivations = b * t * (14 * d + 2 * f) + b * h * t * t;
        var activations = Fp32 * (layers * perLayerActivations + 3 * b * t * v + 4 * b * t * d);

        // Host copies of the parameters and moments for a checkpoint (shared by the replicas), plus the wire buffer and host copy of an all-reduce.
        var staging = Fp32 * (3 * parameters / Math.Max(1, dp) + (dp > 1 ? 2 * parameters : 0));
        return new MemoryEstimate(parameters, Fp32 * parameters, Fp32 * parameters * gradientBuffers, Fp32 * parameters * 2, activations, staging);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"~{TotalMiB} MiB per device ({Parameters:N0} parameters {MiB(ParameterBytes)}, gradients {MiB(GradientBytes)}, AdamW state {MiB(OptimizerBytes)}, activations of one micro-batch {MiB(ActivationBytes)}, staging {MiB(StagingBytes)})");

    private static string MiB(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):0.#} MiB");
}
