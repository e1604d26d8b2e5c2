namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// What one MoE layer did with one micro-batch: choices per expert (before dropping), choices dropped, tokens routed, and
/// the unscaled load-balancing loss (1 when perfectly balanced) and router z-loss.
/// </summary>
public sealed record ExpertLayerLoad(int Layer, IReadOnlyList<int> Load, int Dropped, int Tokens, double Aux, double Z);
