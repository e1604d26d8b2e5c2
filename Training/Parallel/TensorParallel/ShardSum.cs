using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Leaves a region split into virtual shards (Megatron's g, or with a split sequence its reduce-scatter): forward sums
/// the local shards' partial results in the canonical tree over all S shards (only this rank's part of the sequence
/// when <c>scatter</c>); backward hands every shard the whole output gradient (gathered along the sequence when
/// <c>scatter</c>), each its own copy.
/// </summary>
public sealed class ShardSum : SingleTensorFunction<ShardSum>
{
    public override string Name => nameof(ShardSum);

    public static Tensor Apply(TensorParallelGroup group, IReadOnlyList<Tensor> partials, bool scatter) =>
        apply([group, scatter, .. partials]);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var (group, scatter) = ((TensorParallelGroup)vars[0], (bool)vars[1]);
        ctx.save_data("group", group);
        ctx.save_data("scatter", scatter);
        var sum = group.Sum(vars.Skip(2).Cast<Tensor>().ToList(), scatter);
        UndefinedGradients.Expect(ctx, sum);
        return sum;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        var (group, scatter) = ((TensorParallelGroup)ctx.get_data("group"), (bool)ctx.get_data("scatter"));
        grad = UndefinedGradients.OrZeros(ctx, grad);
        Tensor whole;
        try
        {
            whole = scatter ? group.Gather(grad) : grad;
        }
        catch (Exception e)
        {
            group.Fail(e);
            whole = zeros(grad.shape.Select((d, i) => i == 0 ? d * group.Degree : d).ToArray(), dtype: grad.dtype, device: grad.device);
        }
        return [null!, null!, .. group.LocalShards.Select(_ => whole.clone())];
    }
}
