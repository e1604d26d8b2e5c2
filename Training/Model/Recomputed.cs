using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Model;

/// <summary>
/// Activation recomputation: runs a piece of the model without keeping what autograd would save inside it, only its
/// input, and runs it again during backward to take the gradient there (the reentrant form of torch.utils.checkpoint).
/// The second run computes the same bits as the first (dropout masks are keyed by sample, position and site, not drawn
/// from a stream), so the gradients are those of a plain backward. Parameters' gradients land where the plain backward
/// puts them (the bound flat buffer): the piece's parameters are not inputs of this function.
/// </summary>
public sealed class Recomputed : MultiTensorFunction<Recomputed>
{
    public override string Name => nameof(Recomputed);

    /// <param name="group">Where a failure in the second run is recorded (an exception must not cross libtorch's backward).</param>
    public static Tensor Apply(TensorParallelGroup group, Func<Tensor, Tensor> piece, Tensor input) => apply(group, piece, input)[0];

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (group, piece, input) = ((TensorParallelGroup)vars[0], (Func<Tensor, Tensor>)vars[1], (Tensor)vars[2]);
        ctx.save_data("group", group);
        ctx.save_data("piece", piece);
        ctx.save_for_backward([input]);
        using var noGrad = no_grad();
        var output = piece(input);
        UndefinedGradients.Expect(ctx, output);
        return [output];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, piece) = ((TensorParallelGroup)ctx.get_data("group"), (Func<Tensor, Tensor>)ctx.get_data("piece"));
        // The second run's tensors are freed when the backward returns; only the input's gradient goes on.
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables()[0];
        try
        {
            using var grad = enable_grad();
            var input = saved.detach().requires_grad_(true);
            var output = piece(input);
            output.backward([UndefinedGradients.OrZeros(ctx, grads[0])]);
            return [null!, null!, (input.grad ?? zeros_like(saved)).MoveToOuterDisposeScope()];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [null!, null!, zeros_like(saved).MoveToOuterDisposeScope()];
        }
    }
}
