using System.Globalization;

namespace Elastic.Jobs.Reports;

/// <summary>
/// What a step's MoE layers did, summed over its micro-batches and replicas: per layer, the tokens each expert was chosen
/// for (before dropping), the choices dropped for capacity, and the mean (over micro-batches) unscaled load-balancing
/// loss (1 when balanced) and router z-loss. The same on every layout.
/// </summary>
public sealed record ExpertLoad(IReadOnlyList<ExpertLayerLoadSummary> Layers)
{
    /// <summary>The most loaded expert's tokens over the mean, in the most imbalanced layer (1: perfectly balanced).</summary>
    public double MaxOverMean => Layers.Count == 0 ? 1 : Layers.Max(l => l.MaxOverMean);

    public long Dropped => Layers.Sum(l => l.Dropped);

    /// <summary>The balancing loss averaged over the layers.</summary>
    public double Aux => Layers.Count == 0 ? 0 : Layers.Average(l => l.Aux);

    /// <summary>The z-loss averaged over the layers.</summary>
    public double Z => Layers.Count == 0 ? 0 : Layers.Average(l => l.Z);

    public bool Equals(ExpertLoad? other) => other is not null && Layers.SequenceEqual(other.Layers);

    public override int GetHashCode() => Layers.Count;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"max/mean load {MaxOverMean:F2}, dropped {Dropped}, aux {Aux:F3}, z {Z:F3}");
}

/// <summary>One MoE layer's figures in a step (<see cref="ExpertLoad"/>).</summary>
public sealed record ExpertLayerLoadSummary(int Layer, IReadOnlyList<long> Tokens, long Dropped, double Aux, double Z)
{
    public double MaxOverMean => Tokens.Count == 0 || Tokens.Sum() == 0 ? 1 : Tokens.Max() / Tokens.Average();

    public bool Equals(ExpertLayerLoadSummary? other) =>
        other is not null && Layer == other.Layer && Tokens.SequenceEqual(other.Tokens) && Dropped == other.Dropped && Aux.Equals(other.Aux) && Z.Equals(other.Z);

    public override int GetHashCode() => HashCode.Combine(Layer, Dropped, Aux, Z);
}
