namespace Elastic.Grains.Jobs;

/// <summary>
/// Marks the calls a job's coordinator makes (to its units, to the capacity grain) with the coordinator's silo, so that the
/// receiving silo can refuse them once that silo has been declared dead or is shutting down. A silo that was paused past
/// its death sentence runs on for a moment when it wakes, before it learns it is dead, and a stopping silo's training loop
/// can outlive the coordinator's hand-over: neither may hand over, release or step units that the coordinator taking over
/// is about to adopt.
/// </summary>
public static class CoordinatorFence
{
    private const string Key = "elastic.coordinator-silo";

    /// <summary>Marks every call made from here on in this flow (the coordinator's training loop) as coming from <paramref name="silo"/>.</summary>
    public static void Mark(SiloAddress silo) => RequestContext.Set(Key, silo);

    /// <summary>Whether <paramref name="e"/> says another coordinator drives the job now (its record moved on, or a silo refused this one): this one steps down quietly.</summary>
    public static bool Replaced(Exception e) => e is StaleCoordinatorException or Elastic.GrainInterfaces.CoordinatorFencedException;

    /// <summary>The coordinator's silo that the call being handled came from, if a coordinator made it.</summary>
    public static SiloAddress? Caller() => RequestContext.Get(Key) as SiloAddress;
}
