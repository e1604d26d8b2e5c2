using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// A MoE layer as one autograd node: its inputs are the tokens, the router and the hosted experts' weights; its backward
/// (<see cref="MoePass.Backward"/>) returns their gradients, each summed in a fixed order.
/// </summary>
internal sealed class MoeFunction : MultiTensorFunction<MoeFunction>
{
    public override string Name => nameof(MoeFunction);

    private const int Settings = 5;

    public static Tensor Apply(MoeLayer layer, TensorParallelGroup failures, ExpertGroup group, Tensor tokens, Tensor router, IReadOnlyList<ExpertWeights> experts) =>
        apply([layer, failures, group, experts, is_grad_enabled(), tokens, router, .. experts.SelectMany(e => e.All)])[0];

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (layer, failures, group, experts, track) = ((MoeLayer)vars[0], (TensorParallelGroup)vars[1], (ExpertGroup)vars[2], (IReadOnlyList<ExpertWeights>)vars[3], (bool)vars[4]);
        var pass = layer.Run(group, (Tensor)vars[Settings], (Tensor)vars[Settings + 1], experts, track);
        ctx.save_data("failures", failures);
        ctx.save_data("pass", pass);
        UndefinedGradients.Expect(ctx, pass.Output);
        return [pass.Output];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (failures, pass) = ((TensorParallelGroup)ctx.get_data("failures"), (MoePass)ctx.get_data("pass"));
        var settings = new Tensor[Settings];
        try
        {
            var (tokens, router, experts) = pass.Backward(UndefinedGradients.OrZeros(ctx, grads[0]));
            return [.. settings, tokens, router, .. experts.Select(g => g!)];
        }
        catch (Exception e)
        {
            failures.Fail(e);
            return [.. settings, .. pass.ZeroGradients()];
        }
        finally
        {
            pass.Dispose();
        }
    }
}
