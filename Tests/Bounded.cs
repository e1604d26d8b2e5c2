using Xunit.Sdk;

namespace Elastic.Tests;

/// <summary>Waits in tests end: each fails the test, naming what it waited for and the last value seen, once its limit passes.</summary>
public static class Bounded
{
    /// <summary>Reads until <paramref name="done"/> holds, for at most <paramref name="limit"/> (default a minute).</summary>
    public static async Task<T> Until<T>(Func<CancellationToken, Task<T>> read, Func<T, bool> done, string what, TimeSpan? limit = null)
    {
        var max = limit ?? TimeSpan.FromMinutes(1);
        using var timeout = new CancellationTokenSource(max);
        T last = default!;
        try
        {
            while (!done(last = await read(timeout.Token))) await Task.Delay(20, timeout.Token);
            return last;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new XunitException($"{what}: not within {max.TotalSeconds} s (last seen: {last})");
        }
    }

    /// <summary>A token that cancels after <paramref name="limit"/> (default four minutes): for streams that end only when a job does.</summary>
    public static CancellationToken Within(TimeSpan? limit = null) => new CancellationTokenSource(limit ?? TimeSpan.FromMinutes(4)).Token;
}
