using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs;

/// <summary>Where a holder keeps the job's state.</summary>
public enum HolderKind
{
    /// <summary>A prepared unit training on its devices.</summary>
    Live,
    /// <summary>A unit of an earlier plan that copied its state to host memory and gave its devices back; it can only serve.</summary>
    Staged,
    /// <summary>State a unit handed over on its devices for the next unit there, not yet taken (a re-plan failed after the hand-over).</summary>
    Parked,
}

/// <summary>
/// One holder of the job's state when a re-plan begins: its devices (a replica's pipeline stages' tensor-parallel groups,
/// in rank order, <paramref name="Tp"/> per stage), what kind of holder it is, the steps its state has taken (null: it
/// did not answer, lost), whether its devices are leaving, under expert parallelism which part of the experts it hosts, and
/// the generation of its unit's plan (a checkpoint its unit writes is of that generation).
/// </summary>
public sealed record StateHolder(IReadOnlyList<DeviceSlot> Devices, HolderKind Kind, long? Steps, bool Leaving = false, int Tp = 1, int ExpertPart = 0,
    int Generation = 0)
{
    public bool Alive => Steps is not null;
}
