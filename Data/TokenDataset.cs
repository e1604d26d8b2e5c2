namespace Elastic.Data;

/// <summary>
/// Fixed-length windows of a token stream, addressed by global sample index: sample i is window
/// perm_e(i mod n) of epoch e = i / n, where perm_e is a permutation seeded by (seed, e). Any device can
/// fetch any sample without coordination, which is what lets the layout change between steps.
/// </summary>
public sealed class TokenDataset
{
    private readonly int[] _tokens;
    private readonly bool[]? _trained;
    private readonly int _offset;
    private readonly ulong _seed;
    private readonly Lock _gate = new();
    private long _cachedEpoch = -1;
    private int[] _cachedPermutation = [];

    /// <param name="tokens">The whole corpus.</param>
    /// <param name="offset">First token of this split.</param>
    /// <param name="length">Tokens in this split.</param>
    /// <param name="window">Tokens per sample: context + 1 (inputs and shifted targets).</param>
    /// <param name="trained">Per token of the corpus, whether the loss is taken where it is the target; null: everywhere.</param>
    public TokenDataset(int[] tokens, int offset, int length, int window, ulong seed, bool[]? trained = null)
    {
        _tokens = tokens;
        _trained = trained;
        _offset = offset;
        _seed = seed;
        Window = window;
        Count = length < window ? 0 : (length - 1) / (window - 1);
    }

    /// <summary>Tokens per sample (context + 1).</summary>
    public int Window { get; }
    /// <summary>Distinct windows in one epoch (consecutive windows share one boundary token).</summary>
    public int Count { get; }

    /// <summary>The window a global sample index refers to, after the epoch's shuffle.</summary>
    public int WindowOf(long globalSample)
    {
        var epoch = globalSample / Count;
        var position = (int)(globalSample % Count);
        lock (_gate)
        {
            if (epoch != _cachedEpoch)
            {
                _cachedPermutation = Permutation(Count, SplitMix64.Derive(_seed, RandomPurpose.DataOrder, (ulong)epoch));
                _cachedEpoch = epoch;
            }
            return _cachedPermutation[position];
        }
    }

    /// <summary>The tokens of window <paramref name="window"/> (no shuffle).</summary>
    public ReadOnlySpan<int> WindowTokens(int window) =>
        _tokens.AsSpan(_offset + window * (Window - 1), Window);

    /// <summary>Whether some targets carry no loss (supervised data: prompts are read, not learned).</summary>
    public bool Masked => _trained is not null;

    /// <summary>For each target of window <paramref name="window"/> (its tokens 1..), whether the loss is taken there; all true when not <see cref="Masked"/>.</summary>
    public ReadOnlySpan<bool> TrainedTargets(int window) =>
        _trained is null ? Enumerable.Repeat(true, Window - 1).ToArray() : _trained.AsSpan(_offset + window * (Window - 1) + 1, Window - 1);

    /// <summary>Fisher-Yates shuffle of 0..n-1 driven by SplitMix64.</summary>
    public static int[] Permutation(int n, ulong seed)
    {
        var perm = new int[n];
        for (var i = 0; i < n; i++) perm[i] = i;
        var rng = new SplitMix64(seed);
        for (var i = n - 1; i > 0; i--)
        {
            var j = (int)rng.NextBelow((ulong)i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        return perm;
    }
}
