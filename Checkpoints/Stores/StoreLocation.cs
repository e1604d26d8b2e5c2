namespace Elastic.Checkpoints.Stores;

/// <summary>
/// A place files are read from or written to: a folder, or an Azure Blob container and prefix written <c>az://CONTAINER/PREFIX</c>
/// (datasets, models to start from). The account comes from the environment, never from a spec:
/// <c>ELASTIC_STORAGE_CONNECTION_STRING</c> (Azurite, or a key), or <c>ELASTIC_STORAGE_ACCOUNT</c>
/// (https://ACCOUNT.blob.core.windows.net, signed in as the managed or workload identity).
/// </summary>
public sealed record StoreLocation(IBlobStore Store, string Prefix, string Display)
{
    public const string BlobScheme = "az://";
    public const string ConnectionVariable = "ELASTIC_STORAGE_CONNECTION_STRING";
    public const string AccountVariable = "ELASTIC_STORAGE_ACCOUNT";

    /// <summary>Whether <paramref name="location"/> is in blob storage (else a local path).</summary>
    public static bool IsBlob(string location) => location.StartsWith(BlobScheme, StringComparison.Ordinal);

    public string NameOf(string file) => Prefix + file;

    /// <summary>The whole file, or null when it does not exist.</summary>
    public async Task<byte[]?> ReadAsync(string file, CancellationToken cancellation = default) =>
        (await Reach(() => Store.GetVersionedAsync(NameOf(file), cancellation)))?.Content;

    /// <summary>
    /// A read from the store after its own retries (the Azure SDK's, as for checkpoints): one that still fails says where and why
    /// as an <see cref="IOException"/> (unreachable, unauthorized), never the SDK's exception.
    /// </summary>
    public async Task<T> Reach<T>(Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is Azure.RequestFailedException or AggregateException or HttpRequestException or Azure.Identity.AuthenticationFailedException)
        {
            var reason = e is Azure.RequestFailedException { Status: > 0 } failed ? $"{failed.Status} {failed.ErrorCode}" : e.GetBaseException().Message.Split('\n')[0];
            throw new IOException($"{Display}: storage cannot be read ({reason})", e);
        }
    }

    public static StoreLocation Open(string location)
    {
        if (!IsBlob(location)) return new StoreLocation(new LocalDirectoryStore(location), "", location);
        var path = location[BlobScheme.Length..];
        var slash = path.IndexOf('/');
        var (container, prefix) = slash < 0 ? (path, "") : (path[..slash], path[(slash + 1)..].Trim('/'));
        if (container.Length == 0) throw new ArgumentException($"{location}: no container (az://CONTAINER/PREFIX)");
        var store = Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 } connection
            ? AzureBlobStore.Connect(connection, container)
            : Environment.GetEnvironmentVariable(AccountVariable) is { Length: > 0 } account
                ? AzureBlobStore.Connect(new Uri(account), container)
                : throw new ArgumentException($"{location}: set {ConnectionVariable} or {AccountVariable} to say which storage account holds it");
        return new StoreLocation(store, prefix.Length == 0 ? "" : prefix + "/", location);
    }
}
