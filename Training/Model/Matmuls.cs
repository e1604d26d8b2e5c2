using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// The model's matmuls in its compute precision. In bf16 the inputs and weights are cast per call, as autocast does:
/// the casts are part of the graph, so gradients come back to the fp32 weights in fp32 and accumulate there.
/// </summary>
internal sealed class Matmuls(ComputePrecision precision)
{
    public bool Bf16 => precision == ComputePrecision.Bf16;

    public Tensor Linear(Linear layer, Tensor x) =>
        Bf16 ? nn.functional.linear(x.to(ScalarType.BFloat16), layer.weight!.to(ScalarType.BFloat16), layer.bias?.to(ScalarType.BFloat16)) : layer.call(x);

    public Tensor Linear(Tensor x, Tensor weight) =>
        Bf16 ? nn.functional.linear(x.to(ScalarType.BFloat16), weight.to(ScalarType.BFloat16)) : nn.functional.linear(x, weight);
}
