using System.Runtime.CompilerServices;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Model;

/// <summary>
/// Activation recomputation: runs a piece of the model without keeping what autograd would save inside it, only its
/// input, and runs it again during backward to take the gradient there (the reentrant form of torch.utils.checkpoint).
/// The second run computes the same bits as the first (dropout masks are keyed by sample, position and site, not drawn
/// from a stream), so the gradients are those of a plain backward. Parameters' gradients land where the plain backward
/// puts them (the bound flat buffer): the piece's parameters are not inputs of this function. ZeRO 3 gathers the piece's
/// parameters around each run (<c>around</c>, told whether it is the backward's) and releases them after.
/// </summary>
public sealed class Recomputed : MultiTensorFunction<Recomputed>
{
    public override string Name => nameof(Recomputed);

    /// <param name="group">Where a failure in the second run is recorded (an exception must not cross libtorch's backward).</param>
    /// <param name="around">Entered around each run of the piece (true: the backward's run), disposed after.</param>
    /// <param name="owned">A tensor the piece reads besides its input, held out of the caller's dispose scope (which ends before
    /// the backward): disposed once the backward is done with it.</param>
    public static Tensor Apply(TensorParallelGroup group, Func<Tensor, Tensor> piece, Tensor input, Func<bool, IDisposable>? around = null, Tensor? owned = null)
    {
        if (input.is_floating_point()) return apply(group, piece, around!, owned!, input)[0];
        // Token ids take no gradient: a leaf that does makes the output part of the graph, so that backward reaches the piece.
        var reach = zeros(1, requires_grad: true);
        return apply(group, piece, around!, owned!, input, reach)[0];
    }

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (group, piece, around, owned, input) = ((TensorParallelGroup)vars[0], (Func<Tensor, Tensor>)vars[1], (Func<bool, IDisposable>?)vars[2], (Tensor?)vars[3], (Tensor)vars[4]);
        ctx.save_data("group", group);
        ctx.save_data("piece", piece);
        ctx.save_data("around", around!);
        // Boxed: TorchSharp takes a tensor saved as data for a mistake (and says so on the console).
        ctx.save_data("owned", new StrongBox<Tensor?>(owned));
        ctx.save_data("inputs", vars.Length - 4);
        ctx.save_for_backward([input]);
        using var gathered = around?.Invoke(false);
        using var noGrad = no_grad();
        var output = piece(input);
        UndefinedGradients.Expect(ctx, output);
        return [output];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, piece, around) = ((TensorParallelGroup)ctx.get_data("group"), (Func<Tensor, Tensor>)ctx.get_data("piece"), (Func<bool, IDisposable>?)ctx.get_data("around"));
        // The second run's tensors are freed when the backward returns; only the input's gradient goes on.
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables()[0];
        var floating = saved.is_floating_point();
        List<Tensor> Gradients(Tensor? input) => (int)ctx.get_data("inputs") == 1
            ? [null!, null!, null!, null!, input?.MoveToOuterDisposeScope()!]
            : [null!, null!, null!, null!, null!, zeros(1).MoveToOuterDisposeScope()];
        using var owned = ((StrongBox<Tensor?>)ctx.get_data("owned")).Value;
        try
        {
            using var gathered = around?.Invoke(true);
            using var grad = enable_grad();
            var input = floating ? saved.detach().requires_grad_(true) : saved;
            var output = piece(input);
            output.backward([UndefinedGradients.OrZeros(ctx, grads[0])]);
            return Gradients(floating ? input.grad ?? zeros_like(saved) : null);
        }
        catch (Exception e)
        {
            group.Fail(e);
            return Gradients(floating ? zeros_like(saved) : null);
        }
    }
}
