using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Around a computation that every tensor rank runs whole and alike (a MoE layer) when the sequence is split: entering
/// gathers the whole sequence, and backward keeps only this rank's rows of a gradient every rank computed whole; leaving
/// keeps this rank's rows, and backward gathers the whole gradient so that every rank's backward inside sees all of it.
/// Nothing is summed across ranks, so the region's gradients are those of one device.
/// </summary>
public sealed class ReplicatedRegion : SingleTensorFunction<ReplicatedRegion>
{
    public override string Name => nameof(ReplicatedRegion);

    /// <summary>This rank's sequence part [t/tp, ...] to the whole sequence [t, ...].</summary>
    public static Tensor Enter(TensorParallelGroup group, Tensor part) => group.Degree == 1 ? part : apply(group, true, part);

    /// <summary>The whole sequence [t, ...] to this rank's part [t/tp, ...].</summary>
    public static Tensor Leave(TensorParallelGroup group, Tensor whole) => group.Degree == 1 ? whole : apply(group, false, whole);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var (group, enter, input) = ((TensorParallelGroup)vars[0], (bool)vars[1], (Tensor)vars[2]);
        ctx.save_data("group", group);
        ctx.save_data("enter", enter);
        var output = enter ? group.Gather(input) : group.OwnPart(input).clone();
        UndefinedGradients.Expect(ctx, output);
        return output;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        var (group, enter) = ((TensorParallelGroup)ctx.get_data("group"), (bool)ctx.get_data("enter"));
        grad = UndefinedGradients.OrZeros(ctx, grad);
        if (enter) return [null!, null!, group.OwnPart(grad).clone()];
        try
        {
            return [null!, null!, group.Gather(grad)];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [null!, null!, zeros(grad.shape.Select((d, i) => i == 0 ? d * group.Degree : d).ToArray(), dtype: grad.dtype, device: grad.device)];
        }
    }
}
