using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// A MoE layer as one autograd node: its inputs are the tokens, the router and the held experts' weights; its backward
/// (<see cref="MoePass.Backward"/>) returns every one of their gradients, each summed in a fixed order.
/// </summary>
internal sealed class MoeFunction : MultiTensorFunction<MoeFunction>
{
    public override string Name => nameof(MoeFunction);

    public static Tensor Apply(MoeLayer layer, TensorParallelGroup group, Tensor tokens, Tensor router, IReadOnlyList<ExpertWeights> experts) =>
        apply([layer, group, experts, is_grad_enabled(), tokens, router, .. experts.SelectMany(e => e.All)])[0];

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (layer, group, experts, track) = ((MoeLayer)vars[0], (TensorParallelGroup)vars[1], (IReadOnlyList<ExpertWeights>)vars[2], (bool)vars[3]);
        var (tokens, router) = ((Tensor)vars[4], (Tensor)vars[5]);
        var pass = layer.Run(tokens, router, experts, track);
        ctx.save_data("group", group);
        ctx.save_data("pass", pass);
        ctx.save_data("inputs", vars.Length);
        UndefinedGradients.Expect(ctx, pass.Output);
        return [pass.Output];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        var (group, pass) = ((TensorParallelGroup)ctx.get_data("group"), (MoePass)ctx.get_data("pass"));
        var nulls = new Tensor[4];
        try
        {
            var (tokens, router, experts) = pass.Backward(UndefinedGradients.OrZeros(ctx, grads[0]));
            return [.. nulls, tokens, router, .. experts];
        }
        catch (Exception e)
        {
            group.Fail(e);
            return [.. nulls, .. pass.ZeroGradients()];
        }
        finally
        {
            pass.Dispose();
        }
    }
}
