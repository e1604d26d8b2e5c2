namespace Elastic.Grains.Jobs;

/// <summary>
/// The engine errors a job's steps met, by step, error and silo. A failure that stays with a silo (a bad device, a dying
/// host) is worth a re-plan elsewhere; one that follows the job (its spec or data: memory it cannot get, a value the
/// kernels refuse) fails the same step the same way wherever it runs. Seen on two silos, it ends the job instead of
/// moving it to a third. It also counts the failures of one step in a row, whatever their kind: a step that keeps
/// failing on every new plan (a collective that fails the same way each time) ends the job rather than re-plans it forever.
/// </summary>
public sealed class RepeatedFailures
{
    private readonly Dictionary<(long Step, string Error), HashSet<string>> _silos = [];
    private (long Step, int Times) _inARow;

    /// <summary>Counts a failure of <paramref name="step"/>; returns how many times in a row (with no other step failing between) it has failed.</summary>
    public int FailedAgain(long step)
    {
        _inARow = _inARow.Step == step ? (step, _inARow.Times + 1) : (step, 1);
        return _inARow.Times;
    }

    /// <summary>Records that <paramref name="step"/> failed with <paramref name="error"/> on <paramref name="silo"/>; returns the silos it failed on once there are two, else null.</summary>
    public IReadOnlyCollection<string>? Record(long step, string error, string silo)
    {
        if (!_silos.TryGetValue((step, error), out var silos)) _silos[(step, error)] = silos = [];
        silos.Add(silo);
        return silos.Count >= 2 ? silos : null;
    }
}
