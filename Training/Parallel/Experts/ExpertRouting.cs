namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// Where one micro-batch's tokens go in one MoE layer, decided from the router's probabilities alone: each token's top k
/// experts (higher probability first, ties to the lower expert index), and, with a capacity, which of those choices are
/// kept: an expert takes at most <see cref="Capacity"/> tokens, all first choices before any second ones, in token
/// order. Tokens are in canonical order (by sample, then position), so every layout routes, drops and orders alike.
/// </summary>
public sealed class ExpertRouting
{
    private ExpertRouting(int tokens, int experts, int topK, int[] chosen, int capacity, int[][] tokensOf, int[][] slotsOf, int[] load, int dropped)
    {
        (Tokens, Experts, TopK, _chosen, Capacity, _tokensOf, _slotsOf, _load, Dropped) = (tokens, experts, topK, chosen, capacity, tokensOf, slotsOf, load, dropped);
    }

    private readonly int[] _chosen;
    private readonly int[][] _tokensOf;
    private readonly int[][] _slotsOf;
    private readonly int[] _load;

    public int Tokens { get; }
    public int Experts { get; }
    public int TopK { get; }

    /// <summary>The most tokens an expert takes (int.MaxValue: dropless).</summary>
    public int Capacity { get; }

    /// <summary>Choices dropped because their expert was full.</summary>
    public int Dropped { get; }

    /// <summary>The expert of token <paramref name="token"/>'s <paramref name="slot"/>-th choice.</summary>
    public int Choice(int token, int slot) => _chosen[token * TopK + slot];

    /// <summary>The tokens expert <paramref name="expert"/> takes, in token order.</summary>
    public IReadOnlyList<int> TokensOf(int expert) => _tokensOf[expert];

    /// <summary>For each token of <see cref="TokensOf"/>, which of its choices (0 to k - 1) the expert is.</summary>
    public IReadOnlyList<int> SlotsOf(int expert) => _slotsOf[expert];

    /// <summary>Choices of each expert before any were dropped (the load the balancing loss counts).</summary>
    public IReadOnlyList<int> Load => _load;

    /// <summary>
    /// Routes <paramref name="tokens"/> tokens over <paramref name="experts"/> experts from their probabilities (row-major
    /// [tokens, experts]); <paramref name="capacityFactor"/> null is dropless.
    /// </summary>
    public static ExpertRouting Decide(ReadOnlySpan<float> probabilities, int tokens, int experts, int topK, double? capacityFactor)
    {
        if (probabilities.Length != (long)tokens * experts)
            throw new ArgumentException($"{probabilities.Length} probabilities for {tokens} tokens x {experts} experts", nameof(probabilities));
        if (topK < 1 || topK > experts) throw new ArgumentOutOfRangeException(nameof(topK), topK, $"must be in [1, {experts}]");
        var chosen = new int[tokens * topK];
        var taken = new bool[experts];
        for (var t = 0; t < tokens; t++)
        {
            var row = probabilities.Slice(t * experts, experts);
            Array.Clear(taken);
            for (var slot = 0; slot < topK; slot++)
            {
                // Strictly greater wins, so equal probabilities leave the lower index in place; a number beats NaN (a diverged router).
                var best = -1;
                for (var e = 0; e < experts; e++)
                    if (!taken[e] && (best < 0 || row[e] > row[best] || (float.IsNaN(row[best]) && !float.IsNaN(row[e])))) best = e;
                taken[best] = true;
                chosen[t * topK + slot] = best;
            }
        }
        var capacity = capacityFactor is { } factor ? (int)Math.Min(int.MaxValue, Math.Ceiling(factor * tokens * topK / experts)) : int.MaxValue;
        var load = new int[experts];
        var kept = new bool[chosen.Length];
        var dropped = 0;
        // First choices of every token before second ones, each in token order.
        for (var slot = 0; slot < topK; slot++)
            for (var t = 0; t < tokens; t++)
            {
                var e = chosen[t * topK + slot];
                if (load[e]++ < capacity) kept[t * topK + slot] = true;
                else dropped++;
            }
        var tokensOf = new List<int>[experts];
        var slotsOf = new List<int>[experts];
        for (var e = 0; e < experts; e++) (tokensOf[e], slotsOf[e]) = ([], []);
        for (var t = 0; t < tokens; t++)
            for (var slot = 0; slot < topK; slot++)
                if (kept[t * topK + slot])
                {
                    var e = chosen[t * topK + slot];
                    tokensOf[e].Add(t);
                    slotsOf[e].Add(slot);
                }
        return new ExpertRouting(tokens, experts, topK, chosen, capacity, tokensOf.Select(l => l.ToArray()).ToArray(), slotsOf.Select(l => l.ToArray()).ToArray(), load, dropped);
    }
}
