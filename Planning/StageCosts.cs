using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Planning;

/// <summary>
/// What each pipeline stage of a replica holds and computes per micro-batch at one (tp, pp, v, hosted experts): its
/// parameters, the activations its largest chunk keeps under each recomputation mode, its forward matmul FLOPs, elementwise
/// traffic and kernels, as seen by one tensor rank. Everything else about a layout (dp, ZeRO, recomputation) is arithmetic
/// on these, so the planner computes them once per shape and the memory and step-time models share them.
/// </summary>
public sealed class StageCosts
{
    /// <param name="chunks">The model's split into pp x v chunks when already known (a planner splits once per chunk count).</param>
    public StageCosts(TrainingSpec spec, int tp, int pp, int virtualStages, int hostedExperts, IReadOnlyList<ModelChunk>? chunks = null)
    {
        var m = spec.Model;
        Shape = new ModelShape(m, spec.Batch.Micro);
        (Tp, HostedExperts) = (Math.Max(1, tp), hostedExperts);
        (Pp, VirtualStages) = pp > 1 && pp * virtualStages <= m.Layers ? (pp, Math.Max(1, virtualStages)) : (1, 1);
        SequenceSplit = spec.Parallel.Sequence && Tp > 1;
        Chunks = Pp == 1 ? [new ModelChunk(0, 0, m.Layers, true, true, 0)] : chunks ?? PipelineSplit.Chunks(m, Pp * VirtualStages);
        var stages = Enumerable.Range(0, Pp).Select(s => Chunks.Where(c => c.Index % Pp == s).ToList()).ToList();
        Parameters = stages.Select(mine => mine.Sum(c => Shape.ChunkParameters(c, Tp, hostedExperts))).ToArray();
        HoldsHead = stages.Select(mine => mine.Any(c => c.Head)).ToArray();
        LargestUnit = Math.Max(Enumerable.Range(0, m.Layers).Max(l => Shape.LayerParameters(l, Tp, hostedExperts)),
            Math.Max(Shape.EmbeddingParameters(Tp), Shape.HeadParameters(Tp, false)));

        var layerInput = Shape.Tokens * m.DModel / (SequenceSplit ? Tp : 1);
        var perLayer = Shape.LayerActivationElements(Tp, SequenceSplit);
        long ChunkActivations(ModelChunk c, long kept, long recomputing) => c.Count * kept + recomputing
            + (c.Embedding ? Shape.EmbeddingActivationElements / (SequenceSplit ? Tp : 1) : 0) + (c.Head ? Shape.HeadActivationElements(Tp) : 0);
        long[] Largest(long kept, long recomputing) => stages.Select(mine => mine.Max(c => ChunkActivations(c, kept, recomputing))).ToArray();
        _activations = new Dictionary<string, long[]>
        {
            [Recomputation.None] = Largest(perLayer, 0),
            [Recomputation.Selective] = Largest(perLayer - Shape.AttentionKept / Tp, 0),
            [Recomputation.Full] = Largest(layerInput, perLayer),
        };

        ForwardFlops = new double[Pp];
        AttentionCoreFlops = new double[Pp];
        Elementwise = new double[Pp];
        Kernels = new double[Pp];
        ExtraShardKernels = new double[Pp];
        Layers = new int[Pp];
        MoeLayers = new int[Pp];
        for (var s = 0; s < Pp; s++)
            foreach (var chunk in stages[s])
            {
                for (var layer = chunk.First; layer < chunk.First + chunk.Count; layer++)
                {
                    ForwardFlops[s] += Shape.LayerForwardFlops(layer) / Tp;
                    AttentionCoreFlops[s] += Shape.AttentionCoreFlops / Tp;
                    Elementwise[s] += Shape.LayerElementwise(Tp, SequenceSplit);
                    Kernels[s] += Shape.LayerForwardKernels(Tp);
                    ExtraShardKernels[s] += Shape.LayerExtraShardKernels(Tp);
                    Layers[s]++;
                    if (Shape.IsMoe(layer)) MoeLayers[s]++;
                }
                if (chunk.Head)
                {
                    ForwardFlops[s] += Shape.HeadForwardFlops / Tp;
                    Elementwise[s] += 4.0 * Shape.HeadActivationElements(Tp) / 3;
                    Kernels[s] += Math.Max(1, m.Shards / Tp) + 6;
                }
                if (chunk.Embedding)
                {
                    Elementwise[s] += 2.0 * Shape.EmbeddingActivationElements / (SequenceSplit ? Tp : 1);
                    Kernels[s] += 4;
                }
            }
    }

    public ModelShape Shape { get; }
    public int Tp { get; }
    public int Pp { get; }
    public int VirtualStages { get; }
    public int HostedExperts { get; }
    public bool SequenceSplit { get; }
    public IReadOnlyList<ModelChunk> Chunks { get; }

    /// <summary>Parameters one tensor rank of each stage holds.</summary>
    public long[] Parameters { get; }

    /// <summary>Whether each stage holds the head (with tied embeddings its gradient has a region of its own).</summary>
    public bool[] HoldsHead { get; }

    /// <summary>The largest unit ZeRO 3 gathers at once (a layer, the embedding or the head), per tensor rank.</summary>
    public long LargestUnit { get; }

    private readonly Dictionary<string, long[]> _activations;

    /// <summary>The activation elements each stage's largest chunk keeps per micro-batch under <paramref name="recompute"/>.</summary>
    public long[] ChunkActivations(string recompute) => _activations[recompute];

    /// <summary>Forward matmul FLOPs of each stage per micro-batch, per tensor rank.</summary>
    public double[] ForwardFlops { get; }

    /// <summary>The attention cores' forward FLOPs per stage per micro-batch, per tensor rank (selective recomputation runs them again).</summary>
    public double[] AttentionCoreFlops { get; }

    /// <summary>Elements each stage's elementwise kernels read and write in forward per micro-batch, per tensor rank.</summary>
    public double[] Elementwise { get; }

    /// <summary>Kernels one tensor rank of each stage launches in forward per micro-batch.</summary>
    public double[] Kernels { get; }

    /// <summary>Of <see cref="Kernels"/>, those of virtual shards beyond each region's first (<see cref="ModelShape.LayerExtraShardKernels"/>).</summary>
    public double[] ExtraShardKernels { get; }

    public int[] Layers { get; }
    public int[] MoeLayers { get; }

    /// <summary>
    /// How the replicas of <paramref name="layout"/> run a step on these stages: the unit their blocks are whole multiples of, the
    /// longest block (what a step waits for; shorter ones are padded to it under ZeRO 3 and expert parallelism), whether the blocks
    /// are equal subtrees of the accumulation tree, the ZeRO stage in effect (none over one replica) and the recomputation in
    /// effect (ZeRO 3 recomputes every unit, as full recomputation does).
    /// </summary>
    public ReplicaWork WorkOf(TrainingSpec spec, Layout layout)
    {
        var (micros, dp) = (spec.Batch.MicroBatchesPerStep, Math.Max(1, layout.Dp));
        var unit = MicroBatchSplit.Unit(micros, Pp, layout.Schedule == PipelineSchedule.Interleaved);
        var longest = dp <= MicroBatchSplit.MostReplicas(micros, unit) ? MicroBatchSplit.Longest(micros, dp, unit) : Math.Max(1, (micros + dp - 1) / dp);
        var zero = dp > 1 ? layout.Zero : 0;
        return new ReplicaWork(unit, longest, SpecValidator.EqualBlocks(micros, dp, unit), zero, zero >= 3 ? Recomputation.Full : layout.Recompute);
    }

    /// <summary>See <see cref="WorkOf"/>.</summary>
    public sealed record ReplicaWork(int Unit, int LongestBlock, bool EqualBlocks, int Zero, string Recompute);
}
