using Orleans.Concurrency;

namespace Elastic.GrainInterfaces;

/// <summary>
/// The service's API keys (key <see cref="DefaultKey"/>): each stored as the SHA-256 of its random secret, never the
/// secret itself, so that what storage holds cannot be used to call the API.
/// </summary>
[Alias("Elastic.IApiKeyRegistryGrain")]
public interface IApiKeyRegistryGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>Stores a new key; false if its id is taken (the caller draws another).</summary>
    [Alias("Add")] Task<bool> Add(ApiKeyInfo key, byte[] secretHash);

    /// <summary>The key with this id if <paramref name="secretHash"/> is its secret's hash (revoked or expired ones too: the caller decides); otherwise null.</summary>
    [Alias("Verify"), ReadOnly] Task<ApiKeyInfo?> Verify(string id, byte[] secretHash);

    [Alias("List"), ReadOnly] Task<IReadOnlyList<ApiKeyInfo>> List();

    /// <summary>Revokes the key for good; null if there is no such key.</summary>
    [Alias("Revoke")] Task<ApiKeyInfo?> Revoke(string id, DateTimeOffset at);
}
