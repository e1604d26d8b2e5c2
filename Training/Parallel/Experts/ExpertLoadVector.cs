using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// A step's expert loads as one vector of doubles, per MoE layer of the model: E token counts, dropped choices, the
/// balancing loss and the z-loss. Micro-batches' vectors add in the canonical tree, replicas' by all-reduce and stages'
/// by adding exact zeros (each layer is on one stage), like the losses: every layout reports the same figures.
/// </summary>
public static class ExpertLoadVector
{
    private const int Extra = 3;

    /// <summary>The model's MoE layers, in order.</summary>
    public static IReadOnlyList<int> MoeLayers(ModelSpec model) =>
        model.Moe is { } moe ? Enumerable.Range(0, model.Layers).Where(moe.IsMoeLayer).ToList() : [];

    /// <summary>A micro-batch's vector from what its MoE layers on this rank recorded (zeros for the others).</summary>
    public static double[] Of(ModelSpec model, IEnumerable<ExpertLayerLoad> loads)
    {
        var layers = MoeLayers(model).ToList();
        var width = model.Moe!.Experts + Extra;
        var vector = new double[layers.Count * width];
        foreach (var load in loads)
        {
            var at = layers.IndexOf(load.Layer) * width;
            for (var e = 0; e < load.Load.Count; e++) vector[at + e] = load.Load[e];
            (vector[at + width - 3], vector[at + width - 2], vector[at + width - 1]) = (load.Dropped, load.Aux, load.Z);
        }
        return vector;
    }

    /// <summary>Adds <paramref name="other"/> into <paramref name="into"/> and returns it.</summary>
    public static double[] Add(double[] into, double[] other)
    {
        for (var i = 0; i < into.Length; i++) into[i] += other[i];
        return into;
    }

    /// <summary>The step's summary from the vector summed over its <paramref name="microBatches"/> micro-batches; null for a dense model.</summary>
    public static ExpertLoad? Summary(ModelSpec model, double[]? sum, int microBatches)
    {
        if (model.Moe is not { } moe || sum is null) return null;
        var width = moe.Experts + Extra;
        return new ExpertLoad(MoeLayers(model).Select((layer, i) =>
        {
            var at = i * width;
            return new ExpertLayerLoadSummary(layer, Enumerable.Range(at, moe.Experts).Select(j => (long)sum[j]).ToList(), (long)sum[at + width - 3],
                sum[at + width - 2] / microBatches, sum[at + width - 1] / microBatches);
        }).ToList());
    }
}
