using System.Security.Cryptography;

namespace Elastic.Service.Access;

/// <summary>
/// The configured bootstrap admin key, parsed and hashed once (options are validated at start-up, so a key that does not
/// parse means none is configured); requests compare against its hash in constant time.
/// </summary>
public sealed class BootstrapAdminKey(ApiOptions options)
{
    private readonly (string Id, byte[] Hash)? _key =
        options.BootstrapAdminKey is { Length: > 0 } text && ApiKeySecret.Parse(text) is { } key ? (key.Id, key.Hash()) : null;

    public bool Matches(ApiKeySecret presented) =>
        _key is { } known && known.Id == presented.Id && CryptographicOperations.FixedTimeEquals(known.Hash, presented.Hash());
}
