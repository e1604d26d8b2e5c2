namespace Elastic.Data;

/// <summary>A corpus held whole in memory (a text tokenized when the job starts, a file of ids): nothing to fetch, nothing waited for.</summary>
public sealed class InMemoryTokens(int[] tokens) : ITokenSource
{
    public long Length => tokens.Length;

    public void Read(long start, Span<int> destination) => tokens.AsSpan(checked((int)start), destination.Length).CopyTo(destination);

    public void Prefetch(long start, int count)
    {
    }

    public TimeSpan Waited => TimeSpan.Zero;
}
