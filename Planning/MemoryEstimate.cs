using System.Globalization;
using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Planning;

/// <summary>
/// What one device needs to run a spec on a layout, in bytes: parameters, gradient buffers (the flat sum plus the pairwise
/// tree's partial sums), AdamW moments, the activations the micro-batches in flight keep for backward, and host staging
/// (checkpoint captures, the all-reduce wire buffer). Parameters, gradients and moments are fp32 at every precision (bf16
/// computes over fp32 master weights); activations are 2 bytes under bf16, else 4. An estimate meant to refuse what cannot fit
/// before anything starts and to rank layouts, not a profile: it counts the tensors the engine holds and the activations autograd
/// saves, and rounds nothing down. The figures are those of the device that needs most (the busiest pipeline stage).
/// </summary>
public sealed record MemoryEstimate(long Parameters, long ParameterBytes, long GradientBytes, long OptimizerBytes, long ActivationBytes, long StagingBytes)
{
    private const long Fp32 = 4;

    public long TotalBytes => ParameterBytes + GradientBytes + OptimizerBytes + ActivationBytes + StagingBytes;

    /// <summary>What the device itself holds: all of it on a CPU; on an accelerator the staging buffers are in host memory.</summary>
    public long DeviceBytes(bool hostMemory) => hostMemory ? TotalBytes : TotalBytes - StagingBytes;
    public long TotalMiB => (TotalBytes + (1 << 20) - 1) >> 20;

    /// <summary>The spec's own layout at <paramref name="dp"/> replicas (its parallel and runtime fields).</summary>
    public static MemoryEstimate For(TrainingSpec spec, int dp = 1) => For(spec, SpecLayout.At(spec, dp));

    /// <remarks>
    /// Each replica runs its longest block of the micro-batches (padded to it under ZeRO 3 and expert parallelism). Under ZeRO
    /// (1 to 3) each replica keeps 1/dp of the AdamW moments (stage 3: of the parameters too, plus the unit running and the next,
    /// and it recomputes every unit). With pp > 1 a device holds one stage: its chunks' parameters and the activations of the
    /// chunk-forwards its schedule keeps in flight (stage s of 1F1B: p - s micro-batches; interleaved: its warm-up forwards plus one).
    /// Tensor parallelism splits the split layers' parameters and their activations, and with the sequence split the rest.
    /// </remarks>
    public static MemoryEstimate For(TrainingSpec spec, Layout layout) =>
        Of(spec, new StageCosts(spec, layout.Tp, layout.Pp, layout.VirtualStages, HostedExperts(spec, layout)), layout);

    /// <summary>The experts of each MoE layer a replica hosts on <paramref name="layout"/>.</summary>
    public static int HostedExperts(TrainingSpec spec, Layout layout) => spec.Model.Moe is { } moe ? moe.Experts / Math.Max(1, layout.Ep) : 0;

    /// <summary>As <see cref="For(TrainingSpec, Layout)"/>, from the stage costs of the layout's shape (computed once per shape by a planner).</summary>
    public static MemoryEstimate Of(TrainingSpec spec, StageCosts costs, Layout layout) => Stages(spec, costs, layout).MaxBy(s => s.TotalBytes)!;

    /// <summary>What a device of each pipeline stage holds (every tensor rank of a stage alike).</summary>
    public static IReadOnlyList<MemoryEstimate> Stages(TrainingSpec spec, StageCosts costs, Layout layout)
    {
        var dp = Math.Max(1, layout.Dp);
        var activationBytes = spec.Runtime.Precision == "bf16" ? 2L : Fp32;
        var work = costs.WorkOf(spec, layout);
        var (local, zero) = (work.LongestBlock, work.Zero);
        var kept = costs.ChunkActivations(work.Recompute);
        var (pipeline, virtualStages) = (costs.Pp, costs.VirtualStages);
        // The step's sum and one partial sum per level of the micro-batch tree this replica reduces; a block that is not one
        // subtree is summed as several (at most two per level), each kept in its own buffer and wired out together.
        var extraPieces = work.EqualBlocks ? 0 : 2 * (long)Math.Ceiling(Math.Log2(local + 1)) - 1;
        // ZeRO 3 pads a shorter block with micro-batches whose gradient goes to one more buffer, then is dropped.
        var gradientBuffers = 2 + (long)Math.Ceiling(Math.Log2(local)) + extraPieces + (zero >= 3 && extraPieces > 0 ? 1 : 0);
        // Under ZeRO the moments are split over the replicas (the parameters' all-gather shares the gradient's wire buffer).
        var parts = zero > 0 ? dp : 1;
        MemoryEstimate Stage(int s)
        {
            var parameters = costs.Parameters[s];
            // Stage s of 1F1B keeps p - s micro-batches in flight; interleaved, its warm-up forwards plus one.
            var inFlight = pipeline == 1 ? 1 : virtualStages == 1 ? Math.Min(pipeline - s, local) : Math.Min(local * virtualStages, (pipeline - s - 1) * 2 + (virtualStages - 1) * pipeline + 1);
            // ZeRO 3: the unit running and the next one, prefetched.
            var parameterBytes = Fp32 * (zero >= 3 ? (parameters + dp - 1) / dp + 2 * costs.LargestUnit : parameters);
            // Host copies of the parameters and moments for a checkpoint (shared by the replicas), plus the wire buffer and host copy of an all-reduce.
            var staging = Fp32 * (3 * parameters / dp + (dp > 1 ? (2 + extraPieces) * parameters : 0));
            // Tied embeddings: the head's contribution has its own region of every gradient buffer.
            var gradients = parameters + (spec.Model.TiedEmbeddings && costs.HoldsHead[s] ? (long)spec.Model.Vocab * spec.Model.DModel / costs.Tp : 0);
            return new MemoryEstimate(parameters, parameterBytes, Fp32 * gradients * gradientBuffers, Fp32 * ((parameters * 2 + parts - 1) / parts),
                activationBytes * inFlight * kept[s], staging);
        }
        return Enumerable.Range(0, pipeline).Select(Stage).ToList();
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"~{TotalMiB} MiB per device ({Parameters:N0} parameters {MiB(ParameterBytes)}, gradients {MiB(GradientBytes)}, AdamW state {MiB(OptimizerBytes)}, activations in flight {MiB(ActivationBytes)}, staging {MiB(StagingBytes)})");

    /// <summary>Each term on its own, for a planner's explanation.</summary>
    public IEnumerable<(string Term, long Bytes)> Terms =>
    [
        ("parameters", ParameterBytes), ("gradients", GradientBytes), ("AdamW state", OptimizerBytes), ("activations", ActivationBytes), ("staging", StagingBytes),
    ];

    public static string MiB(long bytes) => bytes >= 10L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0 * 1024.0):0.#} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):0.#} MiB");
}
