using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Elastic.Data.Datasets;

/// <summary>
/// Reads a dataset's ids in shard order, checking each shard against the manifest's SHA-256 before any of it is used: a damaged
/// or missing shard fails with its name, never trains.
/// </summary>
public static class DatasetReader
{
    public static async Task<DatasetManifest> ManifestAsync(DatasetLocation location, CancellationToken cancellation = default)
    {
        var blob = await Reach(location, () => location.Store.GetVersionedAsync(location.NameOf(DatasetManifest.FileName), cancellation))
            ?? throw new FileNotFoundException($"{location.Display}: no {DatasetManifest.FileName} (`elastic data prepare` writes one last)");
        return DatasetManifest.Parse(System.Text.Encoding.UTF8.GetString(blob.Content), $"{location.Display}/{DatasetManifest.FileName}");
    }

    public static async Task<(DatasetManifest Manifest, int[] Tokens)> ReadAsync(DatasetLocation location, CancellationToken cancellation = default)
    {
        var manifest = await ManifestAsync(location, cancellation);
        var tokens = new int[checked((int)manifest.Tokens)];
        var at = 0;
        foreach (var shard in manifest.Shards)
        {
            byte[] data;
            try
            {
                data = await Reach(location, () => location.Store.GetRangeAsync(location.NameOf(shard.Name), 0, shard.Tokens * manifest.IdBytes, cancellation));
            }
            catch (Elastic.Checkpoints.Stores.BlobNotFoundException)
            {
                throw new InvalidDataException($"{location.Display}: shard {shard.Name} is missing");
            }
            if (data.Length != shard.Tokens * manifest.IdBytes || Convert.ToHexStringLower(SHA256.HashData(data)) != shard.Sha256)
                throw new InvalidDataException($"{location.Display}: shard {shard.Name} does not match its SHA-256 in the manifest (damaged or replaced); nothing was trained on it");
            for (var i = 0; i < shard.Tokens; i++)
                tokens[at++] = manifest.IdBytes == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(2 * i)) : BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(4 * i));
        }
        return (manifest, tokens);
    }

    /// <summary>
    /// A read from storage after the store's own retries (the Azure SDK's, as for checkpoints): one that still fails says where
    /// and why as an <see cref="IOException"/> (unreachable, unauthorized), never the SDK's exception.
    /// </summary>
    private static async Task<T> Reach<T>(DatasetLocation location, Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is Azure.RequestFailedException or AggregateException or HttpRequestException or Azure.Identity.AuthenticationFailedException)
        {
            var reason = e is Azure.RequestFailedException { Status: > 0 } failed ? $"{failed.Status} {failed.ErrorCode}" : e.GetBaseException().Message.Split('\n')[0];
            throw new IOException($"{location.Display}: storage cannot be read ({reason})", e);
        }
    }
}
