namespace Elastic.Training.Parallel.Sharded;

/// <summary>
/// Under ZeRO, which rank updates which of a stage's parameters: the dense ones partitioned over the data-parallel
/// replicas, and under expert parallelism the hosted experts partitioned over the replicas that host the same experts
/// (the expert-data group: replica r is its member r / ep), since the other replicas hold other experts under the same names.
/// </summary>
public sealed class OptimizerOwnership
{
    /// <param name="entries">Every run of the stage's flat buffer, in buffer order.</param>
    /// <param name="isExpert">Whether a run is a hosted expert parameter's.</param>
    /// <param name="ep">The expert-parallel degree (1: experts, if any, are partitioned like every other parameter).</param>
    public OptimizerOwnership(IReadOnlyList<OptimizerPartition.Entry> entries, Func<string, bool> isExpert, ZeroShard zero, int ep)
    {
        Zero = zero;
        Ep = ep;
        if (ep == 1)
        {
            Dense = OptimizerPartition.Of(entries, zero.Ranks);
            return;
        }
        Dense = OptimizerPartition.Of(entries.Where(e => !isExpert(e.Name)).ToList(), zero.Ranks);
        Experts = OptimizerPartition.Of(entries.Where(e => isExpert(e.Name)).ToList(), zero.Ranks / ep);
    }

    public ZeroShard Zero { get; }
    public int Ep { get; }

    /// <summary>The partition over the data-parallel replicas (every parameter when ep is 1).</summary>
    public OptimizerPartition Dense { get; }

    /// <summary>Under expert parallelism, the hosted experts' partition over the expert-data group; null otherwise.</summary>
    public OptimizerPartition? Experts { get; }

    /// <summary>This rank's index in the expert-data group.</summary>
    public int ExpertRank => Zero.Rank / Ep;

    /// <summary>Whether this rank updates <paramref name="name"/> (and keeps its moments).</summary>
    public bool Updates(string name) =>
        Experts is { } experts && experts.Holds(name) ? experts.OwnerOf(name) == ExpertRank : Dense.OwnerOf(name) == Zero.Rank;

    /// <summary>The runs of the flat parameter buffer this rank updates, in buffer order.</summary>
    public IReadOnlyList<(long Offset, long Length)> ParameterRanges() =>
        [.. Dense.ParameterRanges(Zero.Rank).Concat(Experts?.ParameterRanges(ExpertRank) ?? []).OrderBy(r => r.Offset)];
}
