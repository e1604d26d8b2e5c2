using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// A replicated parameter (LayerNorm gain and bias, a row-parallel bias) used once per virtual sequence chunk: forward
/// gives each chunk its own copy; backward sums the chunks' gradients in the canonical tree over all S chunks, across
/// ranks when the sequence is <c>split</c> (each rank then holds only its chunks), on this rank alone when every rank
/// computes every chunk. Either way every layout gets the bits of one device.
/// </summary>
public sealed class ChunkReplicas : MultiTensorFunction<ChunkReplicas>
{
    public override string Name => nameof(ChunkReplicas);

    /// <summary>One copy per chunk this rank computes (<see cref="SequencePart.Chunks"/>: S/tp when split, else S, or 1 without gradients).</summary>
    public static IReadOnlyList<Tensor> Apply(TensorParallelGroup group, Tensor parameter, SequencePart sequence)
    {
        if (sequence.Split && sequence.Chunks != group.ShardsPerRank)
            throw new ArgumentException($"a split sequence is computed in this rank's {group.ShardsPerRank} chunks, not {sequence.Chunks}", nameof(sequence));
        return sequence.Chunks == 1 && !sequence.Split ? [parameter] : apply(group, sequence.Split, sequence.Chunks, parameter);
    }

    /// <summary>
    /// One copy per virtual shard this rank holds, for a replicated parameter each shard reads apart (Llama's key/value heads
    /// when S does not divide them): the copies' gradients are summed over all S shards as a split sequence's chunks are.
    /// </summary>
    public static IReadOnlyList<Tensor> PerShard(TensorParallelGroup group, Tensor parameter) =>
        group.Shards == 1 ? [parameter] : apply(group, true, group.ShardsPerRank, parameter);

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (group, split, count, parameter) = ((TensorParallelGroup)vars[0], (bool)vars[1], (int)vars[2], (Tensor)vars[3]);
        ctx.save_data("group", group);
        ctx.save_data("split", split);
        UndefinedGradients.Expect(ctx, parameter);
        return Enumerable.Range(0, count).Select(_ => parameter.clone()).ToList();
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, split) = ((TensorParallelGroup)ctx.get_data("group"), (bool)ctx.get_data("split"));
        grads = grads.Select(g => UndefinedGradients.OrZeros(ctx, g)).ToList();
        try
        {
            return [null!, null!, null!, split ? group.Sum(grads, scatter: false) : AllChunks(grads)];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [null!, null!, null!, zeros_like(grads[0])];
        }
    }

    /// <summary>Every rank holds all S chunks: the whole tree, here.</summary>
    private static Tensor AllChunks(List<Tensor> grads) =>
        Engine.PairwiseTree.Reduce(0, grads.Count, i => grads[i], (a, b) => a.add(b, alpha: ExplicitScalars.One));
}
