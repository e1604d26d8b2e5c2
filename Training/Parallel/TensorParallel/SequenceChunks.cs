using TorchSharp;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Per-token operations with replicated parameters, computed one virtual sequence chunk at a time so that the
/// parameters' gradients are sums over chunks in the canonical tree (<see cref="ChunkReplicas"/>) on every layout:
/// LayerNorm and RMSNorm, the bias of a row-parallel layer, position embeddings. Inputs are this rank's part of the sequence.
/// </summary>
public static class SequenceChunks
{
    public static Tensor LayerNorm(TensorParallelGroup group, Tensor x, Tensor weight, Tensor bias, SequencePart sequence, double eps = 1e-5)
    {
        var chunks = Chunks(x, sequence);
        var (weights, biases) = (ChunkReplicas.Apply(group, weight, sequence), ChunkReplicas.Apply(group, bias, sequence));
        long[] features = [x.shape[^1]];
        return Join(chunks.Select((c, i) => nn.functional.layer_norm(c, features, weights[i], biases[i], eps)));
    }

    /// <summary>RMSNorm (Llama): x / sqrt(mean(x^2) + eps) x weight, over the last dimension, in the input's dtype.</summary>
    public static Tensor RmsNorm(TensorParallelGroup group, Tensor x, Tensor weight, SequencePart sequence, double eps)
    {
        var weights = ChunkReplicas.Apply(group, weight, sequence);
        using var epsilon = eps.ToScalar();
        return Join(Chunks(x, sequence).Select((c, i) => RmsNormOf(c, weights[i], epsilon)));
    }

    /// <summary>
    /// One chunk's RMSNorm. It reads its input three times; a view of its own gathers their gradients into one before they meet
    /// the residual stream's, which a whole unchunked input would otherwise sum with them in one order and a chunked one in another.
    /// </summary>
    private static Tensor RmsNormOf(Tensor chunk, Tensor weight, Scalar eps)
    {
        var x = chunk.view(chunk.shape);
        return x.mul(x.mul(x).mean([-1], keepdim: true).add(eps).rsqrt()).mul(weight);
    }

    public static Tensor AddBias(TensorParallelGroup group, Tensor x, Tensor bias, SequencePart sequence)
    {
        var biases = ChunkReplicas.Apply(group, bias, sequence);
        return Join(Chunks(x, sequence).Select((c, i) => c.add(biases[i], alpha: One)));
    }

    /// <summary>Adds the rows of <paramref name="table"/> ([positions, features]) that the sequence's rows stand at.</summary>
    public static Tensor AddPositions(TensorParallelGroup group, Tensor x, Tensor table, SequencePart sequence)
    {
        var tables = ChunkReplicas.Apply(group, table, sequence);
        var rows = x.shape[0] / sequence.Chunks;
        return Join(Chunks(x, sequence).Select((c, i) => c.add(tables[i].narrow(0, sequence.First + i * rows, rows).unsqueeze(1), alpha: One)));
    }

    private static Tensor Join(IEnumerable<Tensor> chunks)
    {
        var all = chunks.ToList();
        return all.Count == 1 ? all[0] : cat(all, 0);
    }

    /// <summary>Split (one autograd node whose backward concatenates: no sums), not narrowed views (whose gradients autograd adds).</summary>
    private static Tensor[] Chunks(Tensor x, SequencePart sequence)
    {
        if (x.shape[0] % sequence.Chunks != 0)
            throw new ArgumentException($"a sequence part of {x.shape[0]} rows does not split into {sequence.Chunks} chunks");
        return sequence.Chunks == 1 ? [x] : x.split(x.shape[0] / sequence.Chunks, 0);
    }
}
