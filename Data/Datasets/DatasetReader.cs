using System.Security.Cryptography;
using Elastic.Checkpoints.Stores;

namespace Elastic.Data.Datasets;

/// <summary>
/// Reads a dataset's ids in shard order, checking each shard against the manifest's SHA-256 before any of it is used: a damaged
/// or missing shard fails with its name, never trains.
/// </summary>
public static class DatasetReader
{
    /// <summary>Whether a data.source names a dataset (a blob prefix, or a folder) rather than a file.</summary>
    public static bool IsDataset(string source) => StoreLocation.IsBlob(source) || Directory.Exists(source);

    public static async Task<DatasetManifest> ManifestAsync(StoreLocation location, CancellationToken cancellation = default)
    {
        var blob = await location.Reach(() => location.Store.GetVersionedAsync(location.NameOf(DatasetManifest.FileName), cancellation))
            ?? throw new FileNotFoundException($"{location.Display}: no {DatasetManifest.FileName} (`elastic data prepare` writes one last)");
        return DatasetManifest.Parse(System.Text.Encoding.UTF8.GetString(blob.Content), $"{location.Display}/{DatasetManifest.FileName}");
    }

    public static async Task<(DatasetManifest Manifest, int[] Tokens)> ReadAsync(StoreLocation location, CancellationToken cancellation = default)
    {
        var manifest = await ManifestAsync(location, cancellation);
        var tokens = new int[checked((int)manifest.Tokens)];
        var at = 0;
        foreach (var shard in manifest.Shards)
        {
            byte[] data;
            try
            {
                data = await location.Reach(() => location.Store.GetRangeAsync(location.NameOf(shard.Name), 0, shard.Tokens * manifest.IdBytes, cancellation));
            }
            catch (Elastic.Checkpoints.Stores.BlobNotFoundException)
            {
                throw new InvalidDataException($"{location.Display}: shard {shard.Name} is missing");
            }
            if (data.Length != shard.Tokens * manifest.IdBytes || Convert.ToHexStringLower(SHA256.HashData(data)) != shard.Sha256)
                throw new InvalidDataException($"{location.Display}: shard {shard.Name} does not match its SHA-256 in the manifest (damaged or replaced); nothing was trained on it");
            CorpusSource.ReadIds(data, manifest.IdBytes).CopyTo(tokens, at);
            at += (int)shard.Tokens;
        }
        return (manifest, tokens);
    }
}
