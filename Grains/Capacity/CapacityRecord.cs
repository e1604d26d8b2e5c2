using Elastic.GrainInterfaces;

namespace Elastic.Grains.Capacity;

/// <summary>The persistent state of the capacity grain: who holds which devices, which silos are draining and why, and the jobs the scheduler knows.</summary>
[GenerateSerializer, Alias("Elastic.CapacityRecord")]
public sealed class CapacityRecord
{
    [Id(0)] public Dictionary<string, List<DeviceSlot>> Held { get; set; } = [];
    /// <summary>By silo address (parsable form: storage serializers need string keys).</summary>
    [Id(1)] public Dictionary<string, Drain> Draining { get; set; } = [];
    /// <summary>By job id: every job that holds devices or waits for them.</summary>
    [Id(2)] public Dictionary<string, Claim> Claims { get; set; } = [];
    /// <summary>
    /// By job id: silos (parsable form) whose old units still serve the job's state while it re-plans off them; a draining silo
    /// waits for them as for held devices. Cleared when the job next reviews its capacity (the re-plan is over) or ends.
    /// </summary>
    [Id(3)] public Dictionary<string, List<string>> Serving { get; set; } = [];
}

[GenerateSerializer, Immutable, Alias("Elastic.CapacityDrain")]
public sealed record Drain([property: Id(0)] string Reason, [property: Id(1)] bool Preemption);

/// <summary>A job the scheduler knows: where it stands, the device counts it accepts, and when it last asked (a queued job must keep asking).</summary>
[GenerateSerializer, Alias("Elastic.CapacityClaim")]
public sealed record Claim(
    [property: Id(0)] JobStanding Standing,
    IReadOnlyList<int> Widths,
    [property: Id(2)] DateTimeOffset LastAsked)
{
    /// <summary>A plain array whatever the caller passed: grain storage writes JSON naming each value's type, and a compiler-made
    /// list (a collection expression's) is not a type the reader may resolve, so the next activation could not load the record.</summary>
    [Id(1)]
    public IReadOnlyList<int> Widths { get; init; } = Widths.ToArray();
}
