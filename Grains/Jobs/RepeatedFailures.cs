namespace Elastic.Grains.Jobs;

/// <summary>
/// The engine errors a job's steps met, by step, error and silo. A failure that stays with a silo (a bad device, a dying
/// host) is worth a re-plan elsewhere; one that follows the job (its spec or data: memory it cannot get, a value the
/// kernels refuse) fails the same step the same way wherever it runs. Seen on two silos, it ends the job instead of
/// moving it to a third.
/// </summary>
public sealed class RepeatedFailures
{
    private readonly Dictionary<(long Step, string Error), HashSet<string>> _silos = [];

    /// <summary>Records that <paramref name="step"/> failed with <paramref name="error"/> on <paramref name="silo"/>; returns the silos it failed on once there are two, else null.</summary>
    public IReadOnlyCollection<string>? Record(long step, string error, string silo)
    {
        if (!_silos.TryGetValue((step, error), out var silos)) _silos[(step, error)] = silos = [];
        silos.Add(silo);
        return silos.Count >= 2 ? silos : null;
    }
}
