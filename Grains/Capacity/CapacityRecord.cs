using Elastic.GrainInterfaces;

namespace Elastic.Grains.Capacity;

/// <summary>The persistent state of the capacity grain: who holds which devices, and which silos are draining and why.</summary>
[GenerateSerializer, Alias("Elastic.CapacityRecord")]
public sealed class CapacityRecord
{
    [Id(0)] public Dictionary<string, List<DeviceSlot>> Held { get; set; } = [];
    /// <summary>By silo address (parsable form: storage serializers need string keys).</summary>
    [Id(1)] public Dictionary<string, Drain> Draining { get; set; } = [];
}

[GenerateSerializer, Immutable, Alias("Elastic.CapacityDrain")]
public sealed record Drain([property: Id(0)] string Reason, [property: Id(1)] bool Preemption);
