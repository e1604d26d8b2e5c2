using static TorchSharp.torch;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>How a layer multiplies: torch's linear, or the model's compute precision around it (bf16 casts).</summary>
public delegate Tensor LinearOp(Tensor input, Tensor weight, Tensor? bias);
