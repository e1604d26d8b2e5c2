namespace Elastic.Training.Parallel.Sharded;

/// <summary>
/// Which data-parallel rank updates which parameters under ZeRO: every parameter of a stage's flat buffer has one owner,
/// whole (all its local tensor-parallel shards), so each owner's sum of squares for the gradient norm and each
/// checkpoint region stay what they are on one device. Owners take contiguous runs of the buffer balanced by size;
/// the tied token embedding and the head's leaves over it go together to rank 0, where the two gradient
/// contributions are added (and, in a pipeline, swapped between the first and last stage of the same replica).
/// A pure function of the buffer's layout and the number of ranks: every rank, and the coordinator, computes the same.
/// </summary>
public sealed class OptimizerPartition
{
    private readonly Dictionary<string, int> _owners;
    private readonly IReadOnlyList<Entry> _entries;

    /// <summary>One parameter's run of the flat buffer (all its local shards); <paramref name="Tied"/>: the token embedding or the head's leaves over it.</summary>
    public sealed record Entry(string Name, long Offset, long Length, bool Tied, bool GradientOnly);

    private OptimizerPartition(IReadOnlyList<Entry> entries, int ranks, Dictionary<string, int> owners) => (_entries, Ranks, _owners) = (entries, ranks, owners);

    public int Ranks { get; }

    /// <param name="entries">Every run of the buffer, in buffer order.</param>
    public static OptimizerPartition Of(IReadOnlyList<Entry> entries, int ranks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        var owners = new Dictionary<string, int>();
        var tied = entries.Where(e => e.Tied).Sum(e => e.Length);
        var rest = entries.Where(e => !e.Tied).Sum(e => e.Length);
        var total = tied + rest;
        // Rank 0 holds the tied group; when that alone is more than its share, the other parameters go to the other ranks.
        var (first, spread, offset) = ranks > 1 && tied * ranks >= total ? (1, ranks - 1, 0L) : (0, ranks, tied);
        long before = 0;
        foreach (var entry in entries)
        {
            if (entry.Tied)
            {
                owners[entry.Name] = 0;
                continue;
            }
            var middle = offset + before + entry.Length / 2.0;
            var scale = first == 0 ? total : rest;
            owners[entry.Name] = first + Math.Min(spread - 1, (int)(middle * spread / Math.Max(1, scale)));
            before += entry.Length;
        }
        return new OptimizerPartition(entries, ranks, owners);
    }

    /// <summary>Whether <paramref name="name"/> is one of this partition's parameters.</summary>
    public bool Holds(string name) => _owners.ContainsKey(name);

    public int OwnerOf(string name) => _owners.TryGetValue(name, out var owner) ? owner : throw new ArgumentException($"no parameter named {name} in this partition", nameof(name));

    /// <summary>The runs of the flat gradient that <paramref name="rank"/> reduces and updates, neighbours merged.</summary>
    public IReadOnlyList<(long Offset, long Length)> GradientRanges(int rank) => Merge(_entries.Where(e => _owners[e.Name] == rank));

    /// <summary>The runs of the flat parameter buffer (the gradient's runs less the head's leaves, which have no storage of their own) that <paramref name="rank"/> updates.</summary>
    public IReadOnlyList<(long Offset, long Length)> ParameterRanges(int rank) => Merge(_entries.Where(e => _owners[e.Name] == rank && !e.GradientOnly));

    /// <summary>Elements of the parameter buffer <paramref name="rank"/> updates (and keeps AdamW moments for).</summary>
    public long ParameterElements(int rank) => ParameterRanges(rank).Sum(r => r.Length);

    private static List<(long Offset, long Length)> Merge(IEnumerable<Entry> entries)
    {
        var runs = new List<(long Offset, long Length)>();
        foreach (var e in entries.OrderBy(e => e.Offset))
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Length == e.Offset) runs[^1] = (runs[^1].Offset, runs[^1].Length + e.Length);
            else if (e.Length > 0) runs.Add((e.Offset, e.Length));
        return runs;
    }
}
