using Elastic.GrainInterfaces;

namespace Elastic.Grains.Access;

/// <summary>The persistent state of the key registry.</summary>
[GenerateSerializer, Alias("Elastic.ApiKeyRegistryRecord")]
public sealed class ApiKeyRegistryRecord
{
    [Id(0)] public Dictionary<string, StoredApiKey> Keys { get; set; } = [];
}

/// <summary>A key's public part and its secret's hash.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.StoredApiKey")]
public sealed record StoredApiKey([property: Id(0)] ApiKeyInfo Info, [property: Id(1)] byte[] SecretHash);
