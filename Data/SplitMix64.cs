namespace Elastic.Data;

/// <summary>
/// A small, fully specified random stream (SplitMix64). Every random choice of a run is derived from
/// the spec seed and a key (purpose, step, sample, ...), never from a rank or a thread, so any layout
/// reproduces the same choices.
/// </summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong Next()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, bound), without modulo bias (Lemire's method).</summary>
    public ulong NextBelow(ulong bound)
    {
        var threshold = (0 - bound) % bound;
        while (true)
        {
            var product = Math.BigMul(Next(), bound, out var low);
            if (low >= threshold) return product;
        }
    }

    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A seed for one purpose and key, e.g. Derive(seed, Purpose.Dropout, step, sample).</summary>
    public static ulong Derive(ulong seed, params ReadOnlySpan<ulong> keys)
    {
        var h = Mix(seed + 0x9E3779B97F4A7C15UL);
        foreach (var key in keys) h = Mix(h ^ Mix(key + 0x632BE59BD9B4E019UL));
        return h;
    }
}

/// <summary>Domains that keep the random streams of different purposes apart.</summary>
public static class RandomPurpose
{
    public const ulong Init = 1;
    public const ulong DataOrder = 2;
    public const ulong Dropout = 3;
    public const ulong Sampling = 4;
}
