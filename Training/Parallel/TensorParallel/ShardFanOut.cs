using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Enters a region split into virtual shards (Megatron's f, or with a split sequence its all-gather): forward hands
/// each local shard its own copy of the input (gathered whole along the sequence when <c>gather</c>; aliases instead
/// of copies were 26% faster at S = 8 but broke the bits of tp = 2 with sequence parallelism in a benchmark); backward sums the shards' input gradients in the canonical tree over all S shards, reduce-scattered back to
/// the sequence part when <c>gather</c>. Separate outputs matter: if the shards shared one tensor, autograd would sum
/// their gradients in its own order, which depends on how many shards a rank holds.
/// </summary>
public sealed class ShardFanOut : MultiTensorFunction<ShardFanOut>
{
    public override string Name => nameof(ShardFanOut);

    public static IReadOnlyList<Tensor> Apply(TensorParallelGroup group, Tensor input, bool gather) => apply(group, gather, input);

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (group, gather, input) = ((TensorParallelGroup)vars[0], (bool)vars[1], (Tensor)vars[2]);
        ctx.save_data("group", group);
        ctx.save_data("gather", gather);
        var whole = gather ? group.Gather(input) : input;
        UndefinedGradients.Expect(ctx, whole);
        return group.LocalShards.Select(_ => whole.clone()).ToList();
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, gather) = ((TensorParallelGroup)ctx.get_data("group"), (bool)ctx.get_data("gather"));
        grads = grads.Select(g => UndefinedGradients.OrZeros(ctx, g)).ToList();
        try
        {
            return [null!, null!, group.Sum(grads, scatter: gather)];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [null!, null!, gather ? zeros_like(group.OwnPart(grads[0])) : zeros_like(grads[0])];
        }
    }
}
