namespace Elastic.Training.Collectives;

/// <summary>
/// Which runs of an fp32 buffer each rank of a group reduces (reduce-scatter) or provides (all-gather). Runs are
/// disjoint; together they need not cover the buffer (what no rank owns is left as it is).
/// </summary>
public sealed class BufferParts
{
    private readonly IReadOnlyList<(int Offset, int Count)>[] _runs;

    /// <param name="runs">Per rank, its runs in buffer order.</param>
    public BufferParts(IReadOnlyList<IReadOnlyList<(int Offset, int Count)>> runs)
    {
        var all = runs.SelectMany((r, rank) => r.Select(run => (run.Offset, run.Count, Rank: rank))).OrderBy(r => r.Offset).ToList();
        for (var i = 0; i < all.Count; i++)
        {
            if (all[i].Offset < 0 || all[i].Count < 0) throw new ArgumentException($"rank {all[i].Rank} has run [{all[i].Offset}, +{all[i].Count})", nameof(runs));
            if (i > 0 && all[i - 1].Offset + all[i - 1].Count > all[i].Offset)
                throw new ArgumentException($"the runs of rank {all[i - 1].Rank} and rank {all[i].Rank} overlap at {all[i].Offset}", nameof(runs));
        }
        _runs = [.. runs];
    }

    /// <summary>Equal contiguous chunks in rank order (the first ranks get one fewer when the count does not divide).</summary>
    public static BufferParts Even(int floats, int ranks) =>
        new(Enumerable.Range(0, ranks).Select(r =>
        {
            var (start, end) = ((int)((long)r * floats / ranks), (int)((long)(r + 1) * floats / ranks));
            return (IReadOnlyList<(int, int)>)[(start, end - start)];
        }).ToList());

    /// <summary>
    /// The values of <paramref name="runs"/> (disjoint, in buffer order) split in equal shares in rank order, each share as
    /// the pieces of the runs it covers: an all-reduce of those runs alone is a reduce-scatter and all-gather over these parts.
    /// </summary>
    public static BufferParts Spread(IReadOnlyList<(int Offset, int Count)> runs, int ranks)
    {
        var total = runs.Sum(r => r.Count);
        var shares = Even(total, ranks);
        return new(Enumerable.Range(0, ranks).Select(rank =>
        {
            var (start, count) = shares.Of(rank)[0];
            var pieces = new List<(int, int)>();
            var before = 0;
            foreach (var run in runs)
            {
                var (from, to) = (Math.Max(start, before), Math.Min(start + count, before + run.Count));
                if (from < to) pieces.Add((run.Offset + from - before, to - from));
                before += run.Count;
            }
            return (IReadOnlyList<(int, int)>)pieces;
        }).ToList());
    }

    /// <summary>Each rank's part of <paramref name="runs"/> (disjoint, in buffer order) alone, in the buffer's own offsets.</summary>
    public BufferParts Within(IReadOnlyList<(int Offset, int Count)> runs) =>
        new(_runs.Select(mine => (IReadOnlyList<(int, int)>)mine
            .SelectMany(run => runs.Select(window => (From: Math.Max(run.Offset, window.Offset), To: Math.Min(run.Offset + run.Count, window.Offset + window.Count))))
            .Where(run => run.From < run.To)
            .OrderBy(run => run.From)
            .Select(run => (run.From, run.To - run.From)).ToList()).ToList());

    public int Ranks => _runs.Length;

    public IReadOnlyList<(int Offset, int Count)> Of(int rank) => _runs[rank];

    /// <summary>Values <paramref name="rank"/> owns in all.</summary>
    public int CountOf(int rank) => _runs[rank].Sum(r => r.Count);

    /// <summary>The last value any run reaches: the buffer must be at least this long.</summary>
    public int End => _runs.SelectMany(r => r).Select(r => r.Offset + r.Count).DefaultIfEmpty(0).Max();
}
