namespace Elastic.Grains.Jobs;

/// <summary>
/// The engine errors a job's steps met, by step, error and silo. A failure that stays with a silo (a bad device, a dying
/// host) is worth a re-plan elsewhere; one that follows the job (its spec or data: memory it cannot get, a value the
/// kernels refuse) fails the same step the same way wherever it runs. Seen on two silos, it ends the job instead of
/// moving it to a third; so does one met as often as a job may fail in a row on the only silo there is. It also counts the
/// failures of one step in a row, whatever their kind: a step that keeps failing on every new plan (a collective that fails
/// the same way each time) ends the job rather than re-plans it forever.
/// </summary>
public sealed class RepeatedFailures(int limit)
{
    private readonly Dictionary<(long Step, string Error), (HashSet<string> Silos, int Times)> _seen = [];
    private (long Step, int Times) _inARow;

    /// <summary>
    /// Counts a failure of <paramref name="step"/>; once it has failed the limit's count of times in a row (with no other step
    /// failing between) returns that count, else null.
    /// </summary>
    public int? FailedTooOftenInARow(long step)
    {
        _inARow = _inARow.Step == step ? (step, _inARow.Times + 1) : (step, 1);
        return _inARow.Times >= limit ? _inARow.Times : null;
    }

    /// <summary>
    /// Records that <paramref name="step"/> failed with <paramref name="error"/> on <paramref name="silo"/>; once it follows the job
    /// (two silos, or the limit's count of times) returns the silos it failed on and how often, else null.
    /// </summary>
    public (IReadOnlyCollection<string> Silos, int Times)? Record(long step, string error, string silo)
    {
        var (silos, times) = _seen.TryGetValue((step, error), out var seen) ? seen : ([], 0);
        silos.Add(silo);
        _seen[(step, error)] = (silos, ++times);
        return silos.Count >= 2 || times >= limit ? (silos, times) : null;
    }
}
