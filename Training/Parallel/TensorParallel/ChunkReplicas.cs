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

    /// <summary>One copy per chunk this rank computes: its S/tp chunks when <paramref name="split"/>, all S otherwise.</summary>
    public static IReadOnlyList<Tensor> Apply(TensorParallelGroup group, Tensor parameter, bool split) => apply(group, split, parameter);

    public static int ChunkCount(TensorParallelGroup group, bool split) => split ? group.ShardsPerRank : group.Shards;

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (group, split, parameter) = ((TensorParallelGroup)vars[0], (bool)vars[1], (Tensor)vars[2]);
        ctx.save_data("group", group);
        ctx.save_data("split", split);
        return Enumerable.Range(0, ChunkCount(group, split)).Select(_ => parameter.clone()).ToList();
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, split) = ((TensorParallelGroup)ctx.get_data("group"), (bool)ctx.get_data("split"));
        try
        {
            return [null!, null!, split ? group.Sum(grads, scatter: false) : AllChunks(grads)];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [null!, null!, zeros_like(grads[0])];
        }
    }

    /// <summary>Every rank holds all S chunks: the whole tree, here.</summary>
    private static Tensor AllChunks(List<Tensor> grads) =>
        Engine.PairwiseTree.Reduce(0, grads.Count, i => grads[i], (a, b) => a.add(b, alpha: ExplicitScalars.One));
}
