namespace Elastic.Training.Model;

/// <summary>How a model's matmuls and attention compute (<c>runtime.precision</c>). Parameters, gradients and optimizer state are fp32 in every mode.</summary>
public enum ComputePrecision
{
    /// <summary>Everything in fp32: the engine's reference bits.</summary>
    Fp32,
    /// <summary>fp32 tensors, matmuls on CUDA tensor cores with TF32 inputs; on a CPU the same as <see cref="Fp32"/>.</summary>
    Tf32,
    /// <summary>Matmuls and attention in bf16 from bf16 copies of the fp32 weights; LayerNorm, softmax, the loss and the residual stream in fp32.</summary>
    Bf16,
}

public static class ComputePrecisions
{
    /// <summary>The precision a validated spec's <c>runtime.precision</c> names.</summary>
    public static ComputePrecision Parse(string name) => name switch
    {
        "fp32" => ComputePrecision.Fp32,
        "tf32" => ComputePrecision.Tf32,
        "bf16" => ComputePrecision.Bf16,
        _ => throw new ArgumentException($"runtime.precision = {name}: must be 'fp32', 'tf32' or 'bf16'", nameof(name)),
    };
}
