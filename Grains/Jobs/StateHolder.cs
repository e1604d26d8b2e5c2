using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs;

/// <summary>Where a holder keeps the job's state.</summary>
[GenerateSerializer, Alias("Elastic.HolderKind")]
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
[GenerateSerializer, Alias("Elastic.StateHolder")]
public sealed record StateHolder(
    [property: Id(0)] IReadOnlyList<DeviceSlot> Devices,
    [property: Id(1)] HolderKind Kind,
    [property: Id(2)] long? Steps,
    [property: Id(3)] bool Leaving = false,
    [property: Id(4)] int Tp = 1,
    [property: Id(5)] int ExpertPart = 0,
    [property: Id(6)] int Generation = 0)
{
    public bool Alive => Steps is not null;
}
