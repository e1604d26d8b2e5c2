using System.Buffers.Binary;
using System.Security.Cryptography;
using Elastic.Checkpoints.Stores;

namespace Elastic.Data.Datasets;

/// <summary>
/// Tokenizes documents into a dataset (<see cref="DatasetManifest"/>): documents are tokenized on every core and written in
/// their input order, into shards of about <c>shardTokens</c> ids that each end at a document boundary; the manifest is created
/// last and only if none exists, so a dataset is never half there and never overwritten. Each block of <c>blockTokens</c> ids of a
/// shard gets its own digest: the unit a job fetches and checks.
/// </summary>
public sealed class DatasetWriter(StoreLocation destination, ITokenizer tokenizer, long shardTokens = 1L << 26, long blockTokens = DatasetWriter.DefaultBlockTokens)
{
    /// <summary>1 Mi ids: 2 or 4 MiB per range read, large enough for blob storage's throughput, small enough to fetch ahead of a step.</summary>
    public const long DefaultBlockTokens = 1L << 20;

    /// <summary>What has been written so far, for a progress display.</summary>
    public readonly record struct Progress(long Documents, long Tokens, long Characters);

    public async Task<DatasetManifest> WriteAsync(IEnumerable<string> documents, int threads, IProgress<Progress>? progress = null, CancellationToken cancellation = default)
    {
        var manifestName = destination.NameOf(DatasetManifest.FileName);
        if (await destination.Store.GetVersionedAsync(manifestName, cancellation) is not null)
            throw new IOException($"{destination.Display} already holds a dataset ({DatasetManifest.FileName} exists); datasets are never overwritten");
        var idBytes = tokenizer.VocabSize <= 1 << 16 ? 2 : 4;
        var shards = new List<DatasetShard>();
        var (ids, starts) = (new List<int>(), new List<long>());
        long documentCount = 0, tokenCount = 0, characters = 0;
        var tokenized = documents.AsParallel().AsOrdered().WithDegreeOfParallelism(Math.Max(1, threads)).WithCancellation(cancellation)
            .Select(text => (Ids: tokenizer.Encode(text), text.Length));
        foreach (var (document, length) in tokenized)
        {
            starts.Add(ids.Count);
            ids.AddRange(document);
            if (tokenizer.EndOfText is { } end) ids.Add(end);
            documentCount++;
            tokenCount += document.Length + (tokenizer.EndOfText is null ? 0 : 1);
            characters += length;
            if (ids.Count >= shardTokens) await Flush();
            progress?.Report(new Progress(documentCount, tokenCount, characters));
        }
        if (ids.Count > 0) await Flush();
        var manifest = new DatasetManifest
        {
            Tokenizer = Tokenizers.Recorded(tokenizer.Name), Vocab = tokenizer.VocabSize, IdBytes = idBytes, EndOfText = tokenizer.EndOfText,
            Documents = documentCount, Tokens = tokenCount, BlockTokens = blockTokens, Shards = shards,
        };
        await destination.Store.PutCreateOnlyAsync(manifestName, System.Text.Encoding.UTF8.GetBytes(manifest.Serialize()), cancellation);
        return manifest;

        async Task Flush()
        {
            var name = $"shard-{shards.Count:D5}";
            var data = new byte[ids.Count * idBytes];
            for (var i = 0; i < ids.Count; i++)
                if (idBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), (ushort)ids[i]);
                else BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4 * i), ids[i]);
            var index = new byte[(starts.Count + 1) * 8];
            for (var i = 0; i < starts.Count; i++) BinaryPrimitives.WriteInt64LittleEndian(index.AsSpan(8 * i), starts[i]);
            BinaryPrimitives.WriteInt64LittleEndian(index.AsSpan(8 * starts.Count), ids.Count);
            await destination.Store.PutCreateOnlyAsync(destination.NameOf(name + ".bin"), data, cancellation);
            await destination.Store.PutCreateOnlyAsync(destination.NameOf(name + ".idx"), index, cancellation);
            var blockBytes = (int)Math.Min(blockTokens * idBytes, data.Length);
            var blocks = Enumerable.Range(0, (data.Length + blockBytes - 1) / blockBytes)
                .Select(b => Convert.ToHexStringLower(SHA256.HashData(data.AsSpan(b * blockBytes, Math.Min(blockBytes, data.Length - b * blockBytes))))).ToList();
            shards.Add(new DatasetShard(name + ".bin", name + ".idx", ids.Count, starts.Count, Convert.ToHexStringLower(SHA256.HashData(data)), Convert.ToHexStringLower(SHA256.HashData(index)), blocks));
            ids.Clear();
            starts.Clear();
        }
    }
}
