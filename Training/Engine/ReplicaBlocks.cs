using Elastic.Parallelism;

namespace Elastic.Training.Engine;

/// <summary>
/// The step's micro-batches [0, <see cref="Leaves"/>) split over <see cref="Ranks"/> data-parallel replicas in contiguous
/// blocks as even as the counts allow (<see cref="MicroBatchSplit"/>). A replica sums its block as pieces, the largest nodes
/// of the canonical tree (<see cref="PairwiseTree"/>) inside it, and <see cref="Reduce{T}"/> combines everyone's pieces in
/// that tree: the bits of one device for any number of replicas, so a job on 7 devices need not drop to 4. A power of two
/// dividing the leaves gives each replica one piece (its block is a subtree) and the tree over ranks.
/// </summary>
public sealed class ReplicaBlocks
{
    private readonly IReadOnlyList<(int First, int Count)> _blocks;
    private readonly (int First, int Count)[][] _pieces;
    private readonly Dictionary<(int First, int Count), (int Rank, int Index)> _owners = [];

    /// <param name="unit">Blocks are whole multiples of it (an interleaved pipeline's stages).</param>
    public ReplicaBlocks(int leaves, int ranks, int unit = 1)
        : this(leaves, Enumerable.Range(0, ranks).Select(rank => MicroBatchSplit.BlockOf(leaves, ranks, rank, unit)).ToList())
    {
    }

    /// <summary>Given blocks, one per rank, that tile the leaves in order (an expert-data group's: each the union of an expert group's).</summary>
    public ReplicaBlocks(int leaves, IReadOnlyList<(int First, int Count)> blocks)
    {
        var end = 0;
        foreach (var (first, count) in blocks)
        {
            if (first != end || count < 1)
                throw new ArgumentException($"block [{first}, +{count}) does not follow leaf {end - 1}: blocks tile the {leaves} leaves in order", nameof(blocks));
            end += count;
        }
        if (end != leaves) throw new ArgumentException($"the blocks end at leaf {end}, not at the {leaves} leaves", nameof(blocks));
        Leaves = leaves;
        _blocks = blocks;
        _pieces = new (int, int)[blocks.Count][];
        for (var rank = 0; rank < blocks.Count; rank++)
        {
            var pieces = new List<(int, int)>();
            Cover(0, leaves, blocks[rank].First, blocks[rank].First + blocks[rank].Count, pieces);
            _pieces[rank] = [.. pieces];
            for (var i = 0; i < pieces.Count; i++) _owners[pieces[i]] = (rank, i);
        }
    }

    /// <summary>Every rank one leaf (a group whose ranks each contribute one buffer).</summary>
    public static ReplicaBlocks OnePerRank(int ranks) => new(ranks, ranks);

    public int Leaves { get; }
    public int Ranks => _blocks.Count;

    /// <summary>The most micro-batches any replica runs.</summary>
    public int Longest => _blocks.Max(b => b.Count);

    /// <summary>The most pieces any replica holds.</summary>
    public int MostPieces => _pieces.Max(p => p.Length);

    public (int First, int Count) BlockOf(int rank) => _blocks[rank];

    /// <summary>The subtrees that make up <paramref name="rank"/>'s block, in micro-batch order.</summary>
    public IReadOnlyList<(int First, int Count)> PiecesOf(int rank) => _pieces[rank];

    /// <summary>The rank and index of the piece that is exactly the leaves [<paramref name="first"/>, +<paramref name="count"/>); null when none is (a node above pieces).</summary>
    public (int Rank, int Index)? PieceAt(int first, int count) => _owners.TryGetValue((first, count), out var owner) ? owner : null;

    /// <summary>Combines all pieces in the canonical tree; <paramref name="piece"/> gives a rank's piece by its index in <see cref="PiecesOf"/>.</summary>
    public T Reduce<T>(Func<int, int, T> piece, Func<T, T, T> combine)
    {
        T Node(int lo, int hi)
        {
            if (PieceAt(lo, hi - lo) is { } owner) return piece(owner.Rank, owner.Index);
            var mid = PairwiseTree.Split(lo, hi);
            var left = Node(lo, mid);
            return combine(left, Node(mid, hi));
        }
        return Node(0, Leaves);
    }

    private static void Cover(int lo, int hi, int first, int end, List<(int, int)> into)
    {
        if (end <= lo || hi <= first) return;
        if (first <= lo && hi <= end)
        {
            into.Add((lo, hi - lo));
            return;
        }
        var mid = PairwiseTree.Split(lo, hi);
        Cover(lo, mid, first, end, into);
        Cover(mid, hi, first, end, into);
    }
}
