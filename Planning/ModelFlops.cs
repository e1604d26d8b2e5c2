using Elastic.Jobs;
using Elastic.Planning.Hardware;

namespace Elastic.Planning;

/// <summary>
/// Model FLOPs utilization (MFU): the FLOPs training the model needs per second, over what its devices could do at their
/// dense peak. The model's FLOPs, not the hardware's: recomputation and pipeline bubbles count as lost, as in PaLM and Megatron.
/// </summary>
public static class ModelFlops
{
    /// <summary>Training FLOPs per token: 6 per parameter (forward 2, backward 4) and attention's 12 x layers x d x context.</summary>
    public static double PerToken(ModelSpec model, long parameters) => 6.0 * parameters + 12.0 * model.Layers * model.DModel * model.Context;

    /// <summary>
    /// Training FLOPs per token of <paramref name="model"/> from its shape: <see cref="PerToken(ModelSpec, long)"/> of its parameters
    /// for a dense model; for a mixture-of-experts one, three times the forward matmuls a token runs (its top-k experts, not all of them).
    /// </summary>
    public static double PerToken(ModelSpec model)
    {
        var shape = new ModelShape(model, 1);
        return model.Moe is null
            ? PerToken(model, shape.Parameters)
            : 3 * (Enumerable.Range(0, model.Layers).Sum(shape.LayerForwardFlops) + shape.HeadForwardFlops) / shape.Tokens;
    }

    /// <summary>One device's published dense peak in TFLOPS at <paramref name="precision"/>, by the device's model name (<see cref="HardwareProfiles"/>); null when not known (CPUs, other cards).</summary>
    public static double? PeakTflops(string deviceModel, string precision) =>
        HardwareProfiles.ForDeviceModel(deviceModel) is { Published: true } profile ? profile.Peak(precision) : null;

    /// <summary>
    /// The MFU of <paramref name="spec"/> training <paramref name="tokensPerSecond"/> on <paramref name="devices"/> devices named
    /// <paramref name="deviceModel"/>; null when their peak is not known, and for mixture-of-experts models (a token runs only
    /// its experts' share of the parameters, which this count does not take yet).
    /// </summary>
    public static double? Utilization(TrainingSpec spec, long parameters, double tokensPerSecond, int devices, string deviceModel) =>
        spec.Model.Moe is null && devices > 0 && parameters > 0 && PeakTflops(deviceModel, spec.Runtime.Precision) is { } peak
            ? tokensPerSecond * PerToken(spec.Model, parameters) / (devices * peak * 1e12)
            : null;
}
