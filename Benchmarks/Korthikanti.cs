using Elastic.Jobs;

namespace Elastic.Benchmarks;

/// <summary>
/// Activation bytes of a transformer's blocks by the formulas of Korthikanti et al. (Reducing Activation Recomputation in
/// Large Transformer Models), at 4-byte activations: twice the paper's fp16 bytes, its 1-byte dropout masks doubled too.
/// Embeddings and logits are left out, as in the paper.
/// </summary>
internal static class Korthikanti
{
    /// <param name="recompute">none, selective (no attention core) or full (each layer's input only).</param>
    public static double Activations(TrainingSpec spec, int tp = 1, bool sequence = false, string recompute = "none")
    {
        var m = spec.Model;
        double s = m.Context, b = spec.Batch.Micro, h = m.DModel, a = m.Heads, t = tp;
        var core = 5 * a * s / (h * t);
        var perLayer = recompute switch
        {
            "full" => 2 * s * b * h,
            "selective" => s * b * h * (tp == 1 || sequence ? 34 / t : 10 + 24 / t),
            _ => s * b * h * ((tp == 1 || sequence ? 34 / t : 10 + 24 / t) + core),
        };
        return 2 * m.Layers * perLayer;
    }
}
