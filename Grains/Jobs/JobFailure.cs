namespace Elastic.Grains.Jobs;

/// <summary>
/// A failure of a job's coordination whose message already says what went wrong, where (shown as the job's error or event);
/// <see cref="Calls"/>: the units' calls it sums up, when it came from calls to units, so that a caller can tell whose fault it was.
/// </summary>
public sealed class JobFailure(string message, IReadOnlyList<Task>? calls = null) : Exception(message)
{
    public IReadOnlyList<Task> Calls { get; } = calls ?? [];
}
