using System.Net;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Elastic.Checkpoints.Stores;

/// <summary>
/// A blob store in one Azure Blob container (Azurite locally). Create-only is If-None-Match: *, swaps are
/// If-Match on the ETag, large blobs upload in parallel 4 MiB blocks, and reads are ranged. The Azure SDK's
/// own retry policy handles transient faults; nothing here retries again.
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

    public AzureBlobStore(BlobContainerClient container)
    {
        _container = container;
        _container.CreateIfNotExists();
    }

    /// <summary>A store over a connection string (e.g. Azurite's) and a container name.</summary>
    public static AzureBlobStore Connect(string connectionString, string container) => new(new BlobContainerClient(connectionString, container));

    public string Location => _container.Uri.ToString();

    public async Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default)
    {
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
        await foreach (var blob in _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellation))
            yield return blob.Name;
    }

    public async Task DeleteAsync(string name, CancellationToken cancellation = default) =>
        await _container.GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: cancellation);
}
