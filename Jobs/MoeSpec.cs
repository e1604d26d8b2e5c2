namespace Elastic.Jobs;

/// <summary>
/// A mixture of experts in place of the MLP of every <see cref="Every"/>-th layer: a router picks each token's top
/// <see cref="TopK"/> of <see cref="Experts"/> MLPs (the dense layers' shape), and the token's output is their outputs
/// weighted by the router's probabilities. Routing depends on the token alone, so the result does not depend on which
/// devices hold which experts (<c>parallel.expert</c>).
/// </summary>
public sealed record MoeSpec
{
    /// <summary>E: experts per MoE layer.</summary>
    public int Experts { get; init; } = 8;
    /// <summary>k: experts each token is sent to (ties in the router's probabilities go to the lower expert index).</summary>
    public int TopK { get; init; } = 2;
    /// <summary>Every this many layers the MLP is a MoE layer (layers k-1, 2k-1, ...; 1: every layer).</summary>
    public int Every { get; init; } = 1;
    /// <summary>
    /// Each expert takes at most ceil(capacityFactor x tokens x k / E) of a micro-batch's tokens, first choices before second
    /// ones, in token order; the rest of a token's choices are dropped (the residual carries it). Null: dropless.
    /// </summary>
    public double? CapacityFactor { get; init; }
    /// <summary>Coefficient of the load-balancing loss E x sum_i f_i x P_i (Switch/GShard): f_i the share of choices, P_i the mean probability of expert i.</summary>
    public double AuxLoss { get; init; } = 0.01;
    /// <summary>Coefficient of the router z-loss, the mean squared log-sum-exp of the router's logits (ST-MoE).</summary>
    public double ZLoss { get; init; } = 0.001;
    /// <summary>A job records an event when a layer's busiest expert stays above this many times the mean load for <see cref="ImbalanceSteps"/> steps.</summary>
    public double ImbalanceAlert { get; init; } = 2.0;

    /// <summary>How many committed steps in a row above <see cref="ImbalanceAlert"/> make an imbalance event.</summary>
    public const int ImbalanceSteps = 20;

    /// <summary>Whether layer <paramref name="layer"/> (0-based) has experts in place of its MLP.</summary>
    public bool IsMoeLayer(int layer) => Every >= 1 && (layer + 1) % Every == 0;
}
