namespace Elastic.Training.Model;

/// <summary>What the forward keeps for backward (<c>runtime.recompute</c>): everything, all but the attention core, or each layer's input only.</summary>
public enum ActivationRecompute
{
    None,
    Selective,
    Full,
}

public static class ActivationRecomputes
{
    public static ActivationRecompute Parse(string value) => value switch
    {
        "none" => ActivationRecompute.None,
        "selective" => ActivationRecompute.Selective,
        "full" => ActivationRecompute.Full,
        _ => throw new ArgumentException($"runtime.recompute '{value}' must be 'none', 'selective' or 'full'", nameof(value)),
    };
}
