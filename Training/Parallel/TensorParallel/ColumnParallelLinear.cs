using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// A linear layer whose output features are split into S virtual shards (QKV, MLP up, the vocabulary head): each local
/// shard computes its slice of the output from the whole input; the input's gradient is the canonical tree sum over
/// the shards' contributions (<see cref="ShardFanOut"/>). With a split sequence the input is this rank's part of the
/// sequence and is gathered first.
/// </summary>
public static class ColumnParallelLinear
{
    /// <param name="weights">This rank's shards, [out/S, in] each, in shard order.</param>
    /// <param name="biases">Their bias shards, [out/S] each, or null.</param>
    /// <param name="gather">The input is this rank's part of the sequence (sequence parallelism).</param>
    /// <returns>Each local shard's output, [sequence, batch, out/S], in shard order.</returns>
    public static IReadOnlyList<Tensor> Forward(TensorParallelGroup group, Tensor input, IReadOnlyList<Tensor> weights, IReadOnlyList<Tensor>? biases,
        bool gather, LinearOp? linear = null)
    {
        linear ??= (x, w, b) => nn.functional.linear(x, w, b);
        var inputs = ShardFanOut.Apply(group, input, gather);
        return inputs.Select((x, i) => linear(x, weights[i], biases?[i])).ToList();
    }
}
