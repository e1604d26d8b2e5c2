using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>Which token ids a vocabulary shard owns, and their rows in it.</summary>
internal static class VocabShard
{
    /// <returns>Owned: whether each id falls in the shard; Local: its row there (0 where not owned, a valid row to look up and mask).</returns>
    public static (Tensor Owned, Tensor Local) Select(Tensor ids, int shard, long rows, Scalar zero)
    {
        using var first = (shard * rows).ToScalar();
        using var end = ((shard + 1) * rows).ToScalar();
        var owned = ids.ge(first).logical_and(ids.lt(end));
        return (owned, ids.sub(first).masked_fill(owned.logical_not(), zero));
    }
}
