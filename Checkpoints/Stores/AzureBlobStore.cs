using System.Net;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Core;
using Azure.Identity;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Elastic.Checkpoints.Stores;

/// <summary>
/// A blob store in one Azure Blob container (Azurite locally). Create-only is If-None-Match: *, swaps are
/// If-Match on the ETag, large blobs upload in parallel 4 MiB blocks, and reads are ranged. The Azure SDK's
/// own retry policy handles transient faults; nothing here or above retries a storage error again.
/// </summary>
public sealed class AzureBlobStore : IBlobStore
{
    private static readonly StorageTransferOptions Transfer = new()
    {
        InitialTransferSize = 4 << 20,
        MaximumTransferSize = 4 << 20,
        MaximumConcurrency = 8,
    };

    private readonly BlobContainerClient _container;
    private volatile bool _containerExists;

    /// <summary>Nothing is sent until the first operation, so a silo starts (and trains) while storage is unreachable.</summary>
    public AzureBlobStore(BlobContainerClient container) => _container = container;

    /// <summary>A store over a connection string (e.g. Azurite's) and a container name.</summary>
    public static AzureBlobStore Connect(string connectionString, string container) =>
        new(new BlobContainerClient(connectionString, container, ClientOptions()));

    /// <summary>A store over an account URI (https://ACCOUNT.blob.core.windows.net) signed in with DefaultAzureCredential (managed identity, workload identity, environment, Azure CLI).</summary>
    public static AzureBlobStore Connect(Uri account, string container) =>
        new(new BlobServiceClient(account, new DefaultAzureCredential(), ClientOptions()).GetBlobContainerClient(container));

    /// <summary>
    /// The SDK's per-request retries are the only transport retries (the checkpoint pipelines add none): a few
    /// exponential tries, and a network timeout short enough that an unreachable account fails a checkpoint
    /// within seconds instead of stalling it for minutes.
    /// </summary>
    private static BlobClientOptions ClientOptions()
    {
        var options = new BlobClientOptions();
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.MaxRetries = 3;
        options.Retry.Delay = TimeSpan.FromMilliseconds(200);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(5);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        return options;
    }

    public string Location => _container.Uri.ToString();

    public async Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default)
    {
        await EnsureContainer(cancellation);
        try
        {
            await _container.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(content), new BlobUploadOptions
            {
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                TransferOptions = Transfer,
            }, cancellation);
        }
        catch (RequestFailedException e) when (e.Status is (int)HttpStatusCode.Conflict or (int)HttpStatusCode.PreconditionFailed)
        {
            throw new BlobAlreadyExistsException(name, Location);
        }
    }

    public async Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default)
    {
        if (length == 0) return [];
        try
        {
            var result = await _container.GetBlobClient(name).DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(offset, length) }, cancellation);
            return result.Value.Content.ToArray();
        }
        catch (RequestFailedException e) when (e.Status == (int)HttpStatusCode.NotFound)
        {
            throw new BlobNotFoundException(name, Location);
        }
        catch (RequestFailedException e) when (e.Status == (int)HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return [];
        }
    }

    public async Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default)
    {
        try
        {
            var result = await _container.GetBlobClient(name).DownloadContentAsync(cancellation);
            return new VersionedBlob(result.Value.Content.ToArray(), result.Value.Details.ETag.ToString());
        }
        catch (RequestFailedException e) when (e.Status == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default)
    {
        await EnsureContainer(cancellation);
        var conditions = expectedVersion is null ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = new ETag(expectedVersion) };
        try
        {
            await _container.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(content), new BlobUploadOptions { Conditions = conditions }, cancellation);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is (int)HttpStatusCode.Conflict or (int)HttpStatusCode.PreconditionFailed)
        {
            return false;
        }
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        await using var blobs = _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellation).GetAsyncEnumerator(cancellation);
        while (true)
        {
            try
            {
                if (!await blobs.MoveNextAsync()) yield break;
            }
            catch (RequestFailedException e) when (e.Status == (int)HttpStatusCode.NotFound)
            {
                yield break; // no container yet: nothing was ever written
            }
            yield return blobs.Current.Name;
        }
    }

    public async Task DeleteAsync(string name, CancellationToken cancellation = default) =>
        await _container.GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: cancellation);

    /// <summary>Creates the container on the first write (and again after a failure), not at construction.</summary>
    private async Task EnsureContainer(CancellationToken cancellation)
    {
        if (_containerExists) return;
        await _container.CreateIfNotExistsAsync(cancellationToken: cancellation);
        _containerExists = true;
    }
}
