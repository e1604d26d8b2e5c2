using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// The model's matmuls in its compute precision. In bf16 the inputs and weights are cast per call, as autocast does:
/// the casts are part of the graph, so gradients come back to the fp32 weights in fp32 and accumulate there.
/// </summary>
internal sealed class Matmuls(ComputePrecision precision)
{
    public Tensor Linear(Tensor x, Tensor weight, Tensor? bias) =>
        precision == ComputePrecision.Bf16
            ? nn.functional.linear(x.to_type(ScalarType.BFloat16), weight.to_type(ScalarType.BFloat16), bias?.to_type(ScalarType.BFloat16))
            : nn.functional.linear(x, weight, bias);
}
