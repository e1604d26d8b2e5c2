namespace Elastic.Parallelism;

/// <summary>
/// How a step's micro-batches split over data-parallel replicas: contiguous blocks as even as the counts allow, in whole
/// units (replica r of R over U = leaves / unit units: units [r·U/R, (r+1)·U/R)). The unit is 1 except under an interleaved
/// pipeline schedule, whose blocks must be multiples of the pipeline's stages. The split never changes a result: every block
/// is summed as subtrees of the one canonical tree.
/// </summary>
public static class MicroBatchSplit
{
    /// <summary>The micro-batches a block is made of whole multiples of: pp under the interleaved schedule when pp divides them, else 1.</summary>
    public static int Unit(int microBatches, int pipeline, bool interleaved) =>
        interleaved && pipeline > 1 && microBatches % pipeline == 0 ? pipeline : 1;

    /// <summary>The most replicas that each get at least one unit.</summary>
    public static int MostReplicas(int microBatches, int unit) => microBatches / unit;

    /// <summary>Replica <paramref name="rank"/>'s block [First, First + Count) of <paramref name="microBatches"/> over <paramref name="ranks"/> replicas.</summary>
    public static (int First, int Count) BlockOf(int microBatches, int ranks, int rank, int unit = 1)
    {
        Check(microBatches, ranks, unit);
        var units = microBatches / unit;
        int Start(int r) => (int)((long)r * units / ranks) * unit;
        return (Start(rank), Start(rank + 1) - Start(rank));
    }

    /// <summary>The longest block: what a step's time follows.</summary>
    public static int Longest(int microBatches, int ranks, int unit = 1)
    {
        Check(microBatches, ranks, unit);
        return (microBatches / unit + ranks - 1) / ranks * unit;
    }

    /// <summary>The shortest block.</summary>
    public static int Shortest(int microBatches, int ranks, int unit = 1)
    {
        Check(microBatches, ranks, unit);
        return microBatches / unit / ranks * unit;
    }

    private static void Check(int microBatches, int ranks, int unit)
    {
        if (unit < 1 || microBatches % unit != 0)
            throw new ArgumentOutOfRangeException(nameof(unit), unit, $"blocks of whole units of {unit} cannot split {microBatches} micro-batches");
        if (ranks < 1 || ranks > microBatches / unit)
            throw new ArgumentOutOfRangeException(nameof(ranks), ranks, $"{microBatches} micro-batches in units of {unit} split over 1 to {microBatches / unit} replicas");
    }
}
