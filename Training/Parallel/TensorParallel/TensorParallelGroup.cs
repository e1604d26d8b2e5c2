using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// One rank's share of a model's S virtual tensor shards (<c>model.tensorShards</c>), and the sums that cross them.
/// Rank r of a tensor-parallel group of tp holds shards [r·S/tp, (r+1)·S/tp) and, when the sequence is split, the
/// same range of the S virtual sequence chunks. Every sum over shards or chunks is the canonical pairwise tree over
/// the S leaves: a rank sums its aligned subtree, the communicator combines the subtrees in the same tree, so any tp
/// dividing S gives the bits of one device. Tensors are sequence-major: dimension 0 is the sequence.
/// </summary>
public sealed class TensorParallelGroup
{
    private Exception? _failure;

    /// <param name="ranks">The tensor-parallel communicator (index = tensor rank); null for a group of one.</param>
    public TensorParallelGroup(int shards, Communicator? ranks)
    {
        var degree = ranks?.WorldSize ?? 1;
        if (!PairwiseTree.IsAlignedBlockCount(shards, degree))
            throw new ArgumentException($"tp {degree} must be a power of two dividing the {shards} tensor shards", nameof(ranks));
        Shards = shards;
        Ranks = ranks;
    }

    /// <summary>S: the virtual shards every split layer is computed in, whatever tp is.</summary>
    public int Shards { get; }
    public Communicator? Ranks { get; }
    public int Degree => Ranks?.WorldSize ?? 1;
    public int Rank => Ranks?.Rank ?? 0;
    public int ShardsPerRank => Shards / Degree;
    public int FirstShard => Rank * ShardsPerRank;

    /// <summary>The virtual shards (and, split, sequence chunks) this rank computes, in order.</summary>
    public IEnumerable<int> LocalShards => Enumerable.Range(FirstShard, ShardsPerRank);

    /// <summary>
    /// The sum of the S per-shard <paramref name="partials"/> (this rank's, in shard order): the rank's subtree, then across
    /// ranks. Whole on every rank, or, <paramref name="scatter"/>, only this rank's part of the sequence (a reduce-scatter).
    /// </summary>
    public Tensor Sum(IReadOnlyList<Tensor> partials, bool scatter)
    {
        if (partials.Count != ShardsPerRank) throw new ArgumentException($"{partials.Count} partials for {ShardsPerRank} local shards", nameof(partials));
        var local = PairwiseTree.Reduce(0, partials.Count, i => partials[i], (a, b) => a.add(b, alpha: One));
        var own = !ReferenceEquals(local, partials[0]);
        if (Ranks is null) return own ? local : local.clone();
        if (scatter) return Ranks.TensorReduceScatterSum(local);
        if (!own) return Ranks.TensorAllReduceSum(local);
        // The local subtree's sum is this call's own: the all-reduce is written over it, with nothing new to allocate.
        Ranks.TensorAllReduceSumInPlace(local);
        return local;
    }

    /// <summary>Every rank's part of the sequence, concatenated in rank order (an all-gather).</summary>
    public Tensor Gather(Tensor part) => Ranks is null ? part : Ranks.TensorAllGather(part);

    /// <summary>This rank's part of the sequence of a tensor every rank holds whole.</summary>
    public Tensor OwnPart(Tensor whole)
    {
        var (first, count) = OwnRows(whole.shape[0]);
        return Degree == 1 ? whole : whole.narrow(0, first, count);
    }

    /// <summary>
    /// A failure in a collective that ran inside backward: it cannot propagate through libtorch's autograd engine (a
    /// managed exception crossing native frames takes the process down), so it is kept here and rethrown after backward.
    /// </summary>
    public void Fail(Exception error) => Interlocked.CompareExchange(ref _failure, error, null);

    /// <summary>Throws the first failure kept by <see cref="Fail"/>, if any, and forgets it.</summary>
    public void ThrowIfFailed()
    {
        if (Interlocked.Exchange(ref _failure, null) is { } failure)
            throw new CollectiveException($"tensor-parallel rank {Rank}: {failure.Message}", failure);
    }

    private (long First, long Count) OwnRows(long rows)
    {
        if (rows % Shards != 0) throw new ArgumentException($"a sequence of {rows} does not split into {Shards} chunks");
        return (rows / Degree * Rank, rows / Degree);
    }
}
