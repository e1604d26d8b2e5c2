using System.Globalization;
using Elastic.Parallelism;

namespace Elastic.Jobs;

/// <summary>
/// What one device needs to run a spec, in bytes (fp32), from the spec and the data-parallel width alone:
/// parameters, gradient buffers (the flat sum plus the pairwise tree's partial sums), AdamW moments, the
/// activations the micro-batches in flight keep for backward, and host staging (checkpoint captures, the all-reduce
/// wire buffer). An estimate meant to refuse what cannot fit before anything starts, not a profile: it
/// counts the tensors the engine holds and the activations autograd saves, and rounds nothing down.
/// </summary>
public sealed record MemoryEstimate(long Parameters, long ParameterBytes, long GradientBytes, long OptimizerBytes, long ActivationBytes, long StagingBytes)
{
    private const long Fp32 = 4;

    public long TotalBytes => ParameterBytes + GradientBytes + OptimizerBytes + ActivationBytes + StagingBytes;
    public long TotalMiB => (TotalBytes + (1 << 20) - 1) >> 20;

    /// <param name="dp">Data-parallel replicas: each holds a whole model (or, pipelined, its stages) and runs micro-batches / dp of them;
    /// under ZeRO (<c>parallel.zero</c> 1 to 3) each keeps 1/dp of the AdamW moments (stage 3: of the parameters too).</param>
    /// <remarks>
    /// With <c>parallel.pipeline</c> p > 1 a device holds one stage: the figures are those of the stage that needs most, its
    /// chunks' parameters and the activations of the chunk-forwards its schedule keeps in flight (stage s of 1F1B: p - s
    /// micro-batches; interleaved: its warm-up forwards plus one).
    /// </remarks>
    public static MemoryEstimate For(TrainingSpec spec, int dp = 1)
    {
        var m = spec.Model;
        long d = m.DModel, f = m.FfnSize, v = m.Vocab, t = m.Context, b = spec.Batch.Micro, h = m.Heads;
        var mlp = (d * f + f) + (f * d + d);
        var perLayer = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + mlp;
        // A MoE layer holds its router and, of its E experts (each an MLP), the E / ExpertRanks(ep, dp) its replica hosts.
        var hosted = m.Moe is { } moe ? moe.Experts / SpecValidator.ExpertRanks(spec.Parallel.Expert, Math.Max(1, dp)) : 0;
        long LayerParameters(int layer) => m.Moe is { } mixture && mixture.IsMoeLayer(layer) ? perLayer - mlp + hosted * mlp + mixture.Experts * d : perLayer;
        // Saved for backward per layer: the block input, both LayerNorm outputs, q/k/v, the attention output,
        // the residual, two projections with their dropout masks, the MLP's two wide activations, and the
        // attention weights of an unfused kernel; then the logits with their softmax and gradient.
        var attentionWeights = b * h * t * t;
        var perLayerActivations = b * t * (14 * d + 2 * f) + attentionWeights;
        // The longest block a replica runs (padded to under ZeRO 3 and expert parallelism).
        var unit = SpecValidator.BlockUnit(spec, spec.Parallel.Pipeline);
        var local = dp >= 1 && dp <= MicroBatchSplit.MostReplicas(spec.Batch.MicroBatchesPerStep, unit)
            ? MicroBatchSplit.Longest(spec.Batch.MicroBatchesPerStep, dp, unit)
            : Math.Max(1, (spec.Batch.MicroBatchesPerStep + Math.Max(1, dp) - 1) / Math.Max(1, dp));
        // ZeRO 3 over more than one replica keeps 1/dp of the parameters plus the largest unit gathered, and recomputes every unit.
        var zero = dp > 1 ? spec.Parallel.Zero : 0;
        // runtime.recompute: selective keeps no attention weights; full keeps each layer's input, and one layer's activations
        // exist while it is run again in backward.
        var (keptPerLayer, recomputing) = zero >= 3 ? (b * t * d, perLayerActivations) : spec.Runtime.Recompute switch
        {
            "selective" => (perLayerActivations - attentionWeights, 0L),
            "full" => (b * t * d, perLayerActivations),
            _ => (perLayerActivations, 0L),
        };

        var (stages, virtualStages) = spec.Parallel.Pipeline > 1 && spec.Parallel.Pipeline * Math.Max(1, spec.Parallel.VirtualStages) <= m.Layers
            ? (spec.Parallel.Pipeline, spec.Parallel.Schedule == "interleaved" ? Math.Max(1, spec.Parallel.VirtualStages) : 1)
            : (1, 1);
        var chunks = stages == 1 ? [new Parallelism.Pipeline.ModelChunk(0, 0, m.Layers, true, true, 0)] : PipelineSplit.Chunks(m, stages * virtualStages);
        long ChunkParameters(Parallelism.Pipeline.ModelChunk c) =>
            Enumerable.Range(c.First, c.Count).Sum(LayerParameters) + (c.Embedding ? v * d + t * d : 0) + (c.Head ? 2 * d + (!m.TiedEmbeddings || !c.Embedding ? v * d : 0) : 0);
        long ChunkActivations(Parallelism.Pipeline.ModelChunk c) => c.Count * keptPerLayer + recomputing + (c.Embedding ? 4 * b * t * d : 0) + (c.Head ? 3 * b * t * v : 0);
        MemoryEstimate Stage(int s)
        {
            var mine = chunks.Where(c => c.Index % stages == s).ToList();
            var parameters = mine.Sum(ChunkParameters);
            var inFlight = stages == 1 ? 1 : virtualStages == 1 ? Math.Min(stages - s, local) : Math.Min(local * virtualStages, (stages - s - 1) * 2 + (virtualStages - 1) * stages + 1);
            var activations = Fp32 * inFlight * mine.Max(ChunkActivations);
            // The step's sum and one partial sum per level of the micro-batch tree this replica reduces; a block that is not one
            // subtree is summed as several (at most two per level), each kept in its own buffer and wired out together.
            var extraPieces = SpecValidator.EqualBlocks(spec.Batch.MicroBatchesPerStep, dp, unit) ? 0 : 2 * (long)Math.Ceiling(Math.Log2(local + 1)) - 1;
            // ZeRO 3 pads a shorter block with micro-batches whose gradient goes to one more buffer, then is dropped.
            var gradientBuffers = 2 + (long)Math.Ceiling(Math.Log2(local)) + extraPieces + (zero >= 3 && extraPieces > 0 ? 1 : 0);
            // Host copies of the parameters and moments for a checkpoint (shared by the replicas), plus the wire buffer and host copy of an all-reduce.
            // Under ZeRO the moments are split over the replicas (the parameters' all-gather shares the gradient's wire buffer).
            var parts = zero > 0 ? dp : 1;
            var largestUnit = Math.Max(Enumerable.Range(0, m.Layers).Max(LayerParameters), Math.Max(v * d + t * d, 2 * d + v * d));
            // The unit running and the next one, prefetched.
            var parameterBytes = Fp32 * (zero >= 3 ? (parameters + dp - 1) / dp + 2 * largestUnit : parameters);
            var staging = Fp32 * (3 * parameters / Math.Max(1, dp) + (dp > 1 ? (2 + extraPieces) * parameters : 0));
            // Tied embeddings: the head's contribution has its own region of every gradient buffer.
            var gradients = parameters + (m.TiedEmbeddings && mine.Any(c => c.Head) ? v * d : 0);
            return new MemoryEstimate(parameters, parameterBytes, Fp32 * gradients * gradientBuffers, Fp32 * ((parameters * 2 + parts - 1) / parts), activations, staging);
        }
        return Enumerable.Range(0, stages).Select(Stage).MaxBy(e => e.TotalBytes)!;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"~{TotalMiB} MiB per device ({Parameters:N0} parameters {MiB(ParameterBytes)}, gradients {MiB(GradientBytes)}, AdamW state {MiB(OptimizerBytes)}, activations in flight {MiB(ActivationBytes)}, staging {MiB(StagingBytes)})");

    private static string MiB(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):0.#} MiB");
}
