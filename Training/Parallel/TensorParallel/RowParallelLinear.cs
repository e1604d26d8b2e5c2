using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// A linear layer whose input features are split into S virtual shards (attention output, MLP down): each local shard
/// multiplies its slice of the input, the partial outputs (fp32, whatever the compute precision) are summed in the
/// canonical tree over the shards (<see cref="ShardSum"/>; reduce-scattered along the sequence when it is split), then
/// the replicated bias is added per sequence chunk (<see cref="SequenceChunks.AddBias"/>).
/// </summary>
public static class RowParallelLinear
{
    /// <param name="inputs">Each local shard's input slice, [sequence, batch, in/S], in shard order.</param>
    /// <param name="weights">This rank's shards, [out, in/S] each.</param>
    /// <returns>[sequence (this rank's part when split), batch, out].</returns>
    public static Tensor Forward(TensorParallelGroup group, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor> weights, Tensor? bias, SequencePart sequence,
        LinearOp? linear = null)
    {
        linear ??= (x, w, b) => nn.functional.linear(x, w, b);
        var partials = inputs.Select((x, i) => linear(x, weights[i], null).to_type(ScalarType.Float32)).ToList();
        var sum = ShardSum.Apply(group, partials, scatter: sequence.Split);
        return bias is null ? sum : SequenceChunks.AddBias(group, sum, bias, sequence);
    }
}
