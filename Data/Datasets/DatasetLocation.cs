using Elastic.Checkpoints.Stores;

namespace Elastic.Data.Datasets;

/// <summary>
/// Where a tokenized dataset lives: a folder, or an Azure Blob container and prefix written <c>az://CONTAINER/PREFIX</c>. The
/// account comes from the environment, never from a spec: <c>ELASTIC_STORAGE_CONNECTION_STRING</c> (Azurite, or a key), or
/// <c>ELASTIC_STORAGE_ACCOUNT</c> (https://ACCOUNT.blob.core.windows.net, signed in as the managed or workload identity).
/// </summary>
public sealed record DatasetLocation(IBlobStore Store, string Prefix, string Display)
{
    public const string BlobScheme = "az://";
    public const string ConnectionVariable = "ELASTIC_STORAGE_CONNECTION_STRING";
    public const string AccountVariable = "ELASTIC_STORAGE_ACCOUNT";

    /// <summary>Whether a data.source names a dataset (a blob prefix, or a folder) rather than a file.</summary>
    public static bool IsDataset(string source) =>
        source.StartsWith(BlobScheme, StringComparison.Ordinal) || Directory.Exists(source);

    public string NameOf(string file) => Prefix + file;

    public static DatasetLocation Open(string location)
    {
        if (!location.StartsWith(BlobScheme, StringComparison.Ordinal))
            return new DatasetLocation(new LocalDirectoryStore(location), "", location);
        var path = location[BlobScheme.Length..];
        var slash = path.IndexOf('/');
        var (container, prefix) = slash < 0 ? (path, "") : (path[..slash], path[(slash + 1)..].Trim('/'));
        if (container.Length == 0) throw new ArgumentException($"{location}: no container (az://CONTAINER/PREFIX)");
        var store = Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 } connection
            ? AzureBlobStore.Connect(connection, container)
            : Environment.GetEnvironmentVariable(AccountVariable) is { Length: > 0 } account
                ? AzureBlobStore.Connect(new Uri(account), container)
                : throw new ArgumentException($"{location}: set {ConnectionVariable} or {AccountVariable} to say which storage account holds it");
        return new DatasetLocation(store, prefix.Length == 0 ? "" : prefix + "/", location);
    }
}
