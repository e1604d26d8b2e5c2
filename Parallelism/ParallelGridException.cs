namespace Elastic.Parallelism;

/// <summary>A layout that cannot be a grid, with every reason (each names the axis and its value).</summary>
public sealed class ParallelGridException(IReadOnlyList<string> errors) : ArgumentException(string.Join("; ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
