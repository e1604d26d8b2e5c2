using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// A token embedding whose vocabulary is split into S virtual shards of V/S rows: each local shard looks up the tokens
/// it owns (zero rows for the others) and the partial embeddings are summed in the canonical tree over the shards
/// (<see cref="ShardSum"/>; reduce-scattered along the sequence when it is split). Lookups go through each shard's
/// Embedding module so that the gradient is libtorch's embedding backward (deterministic on CUDA, unlike index_add).
/// </summary>
public static class VocabParallelEmbedding
{
    /// <param name="tokens">Token ids, [sequence, batch], the whole sequence on every rank.</param>
    /// <param name="shards">This rank's vocabulary shards, each an Embedding of V/S rows.</param>
    public static Tensor Forward(TensorParallelGroup group, Tensor tokens, IReadOnlyList<Embedding> shards, bool sequenceParallel)
    {
        using var zero = 0L.ToScalar();
        var rows = shards[0].weight!.shape[0];
        var partials = group.LocalShards.Select((shard, i) =>
        {
            var (owned, local) = VocabShard.Select(tokens, shard, rows, zero);
            return shards[i].call(local).masked_fill(owned.logical_not().unsqueeze(-1), zero);
        }).ToList();
        return ShardSum.Apply(group, partials, scatter: sequenceParallel);
    }
}
