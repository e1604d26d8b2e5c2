using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Model;

/// <summary>
/// An identity at a unit's input whose backward says that the unit's backward is done: autograd runs a node only once every
/// gradient into it has arrived, so the unit's own nodes have all run, and it runs parameters' accumulations before any
/// other ready node, so every gradient of the unit's parameters is final. What the caller does with that (reduce those
/// gradients while the backward goes on below) changes no value: the output and the gradient are copies.
/// </summary>
public sealed class UnitBackwardDone : SingleTensorFunction<UnitBackwardDone>
{
    public override string Name => nameof(UnitBackwardDone);

    /// <param name="done">Told the unit's name during backward, on the thread autograd runs it on; must not throw (an exception
    /// must not cross libtorch's backward).</param>
    public static Tensor Apply(string unit, Action<string> done, Tensor input) => apply(unit, done, input);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var (unit, done, input) = ((string)vars[0], (Action<string>)vars[1], (Tensor)vars[2]);
        ctx.save_data("unit", unit);
        ctx.save_data("done", done);
        var output = input.clone();
        UndefinedGradients.Expect(ctx, output);
        return output;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        grad = UndefinedGradients.OrZeros(ctx, grad);
        ((Action<string>)ctx.get_data("done"))((string)ctx.get_data("unit"));
        return [null!, null!, grad.clone()];
    }
}
