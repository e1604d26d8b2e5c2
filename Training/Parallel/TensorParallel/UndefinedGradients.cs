using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// The tensor-parallel autograd functions take undefined output gradients themselves (an output that did not reach
/// the loss): left to TorchSharp, they would be made from a cached tensor that a dispose scope may already have freed,
/// and the exception would cross libtorch's frames and end the process.
/// </summary>
internal static class UndefinedGradients
{
    /// <summary>Call in forward: remembers the outputs' shape, dtype and device, and turns TorchSharp's materialising off.</summary>
    public static void Expect(AutogradContext ctx, Tensor output)
    {
        ctx.set_materialize_grads(false);
        ctx.save_data("output.shape", output.shape);
        ctx.save_data("output.dtype", output.dtype);
        ctx.save_data("output.device", output.device);
    }

    /// <summary>Call in backward: the gradient, or zeros shaped like the output when it is undefined.</summary>
    public static Tensor OrZeros(AutogradContext ctx, Tensor? grad) =>
        grad is { IsInvalid: false }
            ? grad
            : zeros((long[])ctx.get_data("output.shape"), dtype: (ScalarType)ctx.get_data("output.dtype"), device: (Device)ctx.get_data("output.device"));
}
