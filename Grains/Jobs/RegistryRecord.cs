namespace Elastic.Grains.Jobs;

/// <summary>The persistent state of the job registry: every job, and the idempotency key that created it.</summary>
[GenerateSerializer, Alias("Elastic.RegistryRecord")]
public sealed class RegistryRecord
{
    [Id(0)] public Dictionary<string, Admission> ByKey { get; set; } = [];
    [Id(1)] public List<string> Jobs { get; set; } = [];
}

/// <summary>A job admitted under an idempotency key, with the canonical JSON of its spec.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.Admission")]
public sealed record Admission([property: Id(0)] string JobId, [property: Id(1)] string SpecJson);
