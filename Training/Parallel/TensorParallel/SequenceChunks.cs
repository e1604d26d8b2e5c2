using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Per-token operations with replicated parameters, computed one virtual sequence chunk at a time so that the
/// parameters' gradients are sums over chunks in the canonical tree (<see cref="ChunkReplicas"/>) on every layout:
/// LayerNorm and the bias of a row-parallel layer. <c>split</c>: the input is this rank's part of the sequence.
/// </summary>
public static class SequenceChunks
{
    public static Tensor LayerNorm(TensorParallelGroup group, Tensor x, Tensor weight, Tensor bias, bool split, double eps = 1e-5)
    {
        var chunks = Chunks(group, x, split);
        var (weights, biases) = (ChunkReplicas.Apply(group, weight, split), ChunkReplicas.Apply(group, bias, split));
        long[] features = [x.shape[^1]];
        return cat(chunks.Select((c, i) => nn.functional.layer_norm(c, features, weights[i], biases[i], eps)).ToList(), 0);
    }

    public static Tensor AddBias(TensorParallelGroup group, Tensor x, Tensor bias, bool split)
    {
        var chunks = Chunks(group, x, split);
        var biases = ChunkReplicas.Apply(group, bias, split);
        return cat(chunks.Select((c, i) => c.add(biases[i], alpha: One)).ToList(), 0);
    }

    /// <summary>Split (one autograd node whose backward concatenates: no sums), not narrowed views (whose gradients autograd adds).</summary>
    private static Tensor[] Chunks(TensorParallelGroup group, Tensor x, bool split)
    {
        var count = ChunkReplicas.ChunkCount(group, split);
        if (x.shape[0] % count != 0)
            throw new ArgumentException($"a sequence of {x.shape[0]} does not split into {count} chunks");
        return x.split(x.shape[0] / count, 0);
    }
}
