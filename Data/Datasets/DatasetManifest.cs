using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Data.Datasets;

/// <summary>
/// A tokenized dataset's manifest (<c>manifest.json</c>, written last: a dataset exists only when its manifest does): the
/// tokenizer that made it, how ids are stored, and its shards in order. Each shard holds whole documents, each ended by the
/// tokenizer's end-of-text token, as little-endian ids; its index holds the offset of each document's first token and, last,
/// the shard's length (uint64 each). Every file carries its SHA-256, and each block of <see cref="BlockTokens"/> ids of a shard
/// its own, so that a reader can fetch and check a block at a time; bytes that do not match are never trained on.
/// </summary>
public sealed record DatasetManifest
{
    public const string FileName = "manifest.json";
    public const string CurrentFormat = "elastic-tokens/1";

    public string Format { get; init; } = CurrentFormat;
    /// <summary>The data.tokenizer that made it (a file tokenizer by its file name).</summary>
    public required string Tokenizer { get; init; }
    public required int Vocab { get; init; }
    /// <summary>2 (uint16, vocabularies up to 65,536) or 4 (uint32).</summary>
    public required int IdBytes { get; init; }
    public int? EndOfText { get; init; }
    public required long Documents { get; init; }
    public required long Tokens { get; init; }
    /// <summary>Ids per block of a shard (its last block may be shorter); null in datasets made before blocks: a shard is one block.</summary>
    public long? BlockTokens { get; init; }
    public required IReadOnlyList<DatasetShard> Shards { get; init; }

    /// <summary>Ids per block of <paramref name="shard"/>.</summary>
    public long BlockTokensOf(DatasetShard shard) => BlockTokens ?? Math.Max(1, shard.Tokens);

    /// <summary>The SHA-256 of block <paramref name="block"/> of <paramref name="shard"/>.</summary>
    public string BlockSha256(DatasetShard shard, int block) => BlockTokens is null ? shard.Sha256 : shard.BlockSha256![block];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public string Serialize() => JsonSerializer.Serialize(this, Json);

    /// <summary>The manifest in <paramref name="json"/>; one that is not a manifest of this format names the problem.</summary>
    public static DatasetManifest Parse(string json, string location)
    {
        DatasetManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<DatasetManifest>(json, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{location}: not a dataset manifest ({e.Message.Split(" Path:")[0]})", e);
        }
        if (manifest is null || manifest.Format != CurrentFormat)
            throw new InvalidDataException($"{location}: format '{manifest?.Format}' (expected {CurrentFormat})");
        if (manifest.IdBytes is not (2 or 4)) throw new InvalidDataException($"{location}: idBytes {manifest.IdBytes} (2 or 4)");
        if (manifest.Shards is null || manifest.Shards.Count == 0) throw new InvalidDataException($"{location}: no shards");
        if (manifest.BlockTokens is < 1) throw new InvalidDataException($"{location}: blockTokens {manifest.BlockTokens} (at least 1)");
        foreach (var shard in manifest.Shards)
        {
            if (shard.Tokens < 1) throw new InvalidDataException($"{location}: shard {shard.Name} has {shard.Tokens} tokens");
            var blocks = (shard.Tokens + manifest.BlockTokensOf(shard) - 1) / manifest.BlockTokensOf(shard);
            if (manifest.BlockTokens is not null && shard.BlockSha256?.Count != blocks)
                throw new InvalidDataException($"{location}: shard {shard.Name} lists {shard.BlockSha256?.Count ?? 0} block digests for {blocks} blocks of {manifest.BlockTokens} tokens");
        }
        if (manifest.Shards.Sum(s => s.Tokens) != manifest.Tokens)
            throw new InvalidDataException($"{location}: tokens {manifest.Tokens} is not the sum of its shards' ({manifest.Shards.Sum(s => s.Tokens)})");
        return manifest;
    }
}

/// <summary>One shard: its ids file and document index, their sizes and digests, and the digest of each block of its ids.</summary>
public sealed record DatasetShard(string Name, string Index, long Tokens, long Documents, string Sha256, string IndexSha256, IReadOnlyList<string>? BlockSha256 = null);
