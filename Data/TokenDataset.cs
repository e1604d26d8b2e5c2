namespace Elastic.Data;

/// <summary>
/// Fixed-length windows of a token stream, addressed by global sample index: sample i is window
/// perm_e(i mod n) of epoch e = i / n, where perm_e is a permutation seeded by (seed, e). Any device can
/// fetch any sample without coordination, which is what lets the layout change between steps.
/// </summary>
public sealed class TokenDataset
{
    private readonly ITokenSource _tokens;
    private readonly bool[]? _trained;
    private readonly long _offset;
    private readonly ulong _seed;
    private readonly Lock _gate = new();
    // The two epochs asked for last: reads ahead of a step may reach into the next epoch while the step reads this one.
    private (long Epoch, int[] Permutation) _newer = (-1, []), _older = (-1, []);

    /// <param name="tokens">The whole corpus.</param>
    /// <param name="offset">First token of this split.</param>
    /// <param name="length">Tokens in this split.</param>
    /// <param name="window">Tokens per sample: context + 1 (inputs and shifted targets).</param>
    /// <param name="trained">Per token of the corpus, whether the loss is taken where it is the target; null: everywhere.</param>
    public TokenDataset(ITokenSource tokens, long offset, long length, int window, ulong seed, bool[]? trained = null)
    {
        _tokens = tokens;
        _trained = trained;
        _offset = offset;
        _seed = seed;
        Window = window;
        var count = length < window ? 0 : (length - 1) / (window - 1);
        Count = count <= Array.MaxLength ? (int)count
            : throw new ArgumentOutOfRangeException(nameof(length), $"{count:N0} windows of {window} tokens; at most {Array.MaxLength:N0} per source (a longer model.context, or several sources)");
    }

    /// <summary>Where the tokens come from (the whole source: this split is a range of it).</summary>
    public ITokenSource Source => _tokens;

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
            if (epoch == _older.Epoch) (_newer, _older) = (_older, _newer);
            else if (epoch != _newer.Epoch)
                (_newer, _older) = ((epoch, Permutation(Count, SplitMix64.Derive(_seed, RandomPurpose.DataOrder, (ulong)epoch))), _newer);
            return _newer.Permutation[position];
        }
    }

    /// <summary>The tokens of window <paramref name="window"/> (no shuffle).</summary>
    public int[] WindowTokens(int window)
    {
        var tokens = new int[Window];
        _tokens.Read(Start(window), tokens);
        return tokens;
    }

    /// <summary>Asks for window <paramref name="window"/>'s tokens to be fetched ahead of <see cref="WindowTokens"/>.</summary>
    public void Prefetch(int window) => _tokens.Prefetch(Start(window), Window);

    private long Start(int window) => _offset + (long)window * (Window - 1);

    /// <summary>Whether some targets carry no loss (supervised data: prompts are read, not learned).</summary>
    public bool Masked => _trained is not null;

    /// <summary>For each target of window <paramref name="window"/> (its tokens 1..), whether the loss is taken there; all true when not <see cref="Masked"/>.</summary>
    public ReadOnlySpan<bool> TrainedTargets(int window) =>
        _trained is null ? Enumerable.Repeat(true, Window - 1).ToArray() : _trained.AsSpan(checked((int)Start(window)) + 1, Window - 1);

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
