using System.Security.Cryptography;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Placement;

namespace Elastic.Grains.Access;

/// <summary>Keeps the API keys' hashes in the jobs' storage, so that keys outlive any silo and the service's restarts.</summary>
[OnDemandPlacement]
public sealed class ApiKeyRegistryGrain(
    [PersistentState("api-keys", StorageNames.Jobs)] IPersistentState<ApiKeyRegistryRecord> keys) : Grain, IApiKeyRegistryGrain
{
    public async Task<bool> Add(ApiKeyInfo key, byte[] secretHash)
    {
        if (keys.State.Keys.ContainsKey(key.Id)) return false;
        keys.State.Keys[key.Id] = new StoredApiKey(key, secretHash);
        await keys.WriteStateAsync();
        return true;
    }

    public Task<ApiKeyInfo?> Verify(string id, byte[] secretHash) =>
        Task.FromResult(keys.State.Keys.TryGetValue(id, out var stored) && CryptographicOperations.FixedTimeEquals(stored.SecretHash, secretHash)
            ? stored.Info
            : null);

    public Task<IReadOnlyList<ApiKeyInfo>> List() =>
        Task.FromResult<IReadOnlyList<ApiKeyInfo>>(keys.State.Keys.Values.Select(k => k.Info).OrderBy(k => k.CreatedAt).ThenBy(k => k.Id).ToList());

    public async Task<ApiKeyInfo?> Revoke(string id, DateTimeOffset at)
    {
        if (!keys.State.Keys.TryGetValue(id, out var stored)) return null;
        if (stored.Info.RevokedAt is not null) return stored.Info;
        var revoked = stored with { Info = stored.Info with { RevokedAt = at } };
        keys.State.Keys[id] = revoked;
        await keys.WriteStateAsync();
        return revoked.Info;
    }
}
