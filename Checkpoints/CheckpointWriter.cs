using System.Security.Cryptography;
using System.Text.Json;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;

namespace Elastic.Checkpoints;

/// <summary>
/// Writes checkpoints in the order that makes them safe: chunks first (each writer its own create-only
/// safetensors file), then the manifest (create-only), then <c>latest</c> by compare-and-swap, refusing to move
/// it back to an older generation. A writer that dies part-way leaves only orphan chunks, never a checkpoint.
/// </summary>
public sealed class CheckpointWriter(IBlobStore store, CheckpointLayout layout, int blockSize = 1 << 20)
{
    /// <summary>Writes this writer's share of the tensors into one chunk file; returns their manifest entries.</summary>
    public async Task<IReadOnlyList<ChunkDescriptor>> WriteChunksAsync(long step, int generation, string writer, IReadOnlyList<ShardedTensor> tensors, CancellationToken cancellation = default)
    {
        foreach (var t in tensors)
        {
            var expected = t.LocalShape.Aggregate(1L, (a, b) => a * b) * DType.SizeOf(t.DType);
            if (t.Data.Length != expected)
                throw new ArgumentException($"{t.Key}{t.Region}: {t.Data.Length} bytes, expected {expected} for {t.DType} {string.Join("x", t.LocalShape)}", nameof(tensors));
        }
        var file = layout.ChunkFile(step, generation, writer);
        var (bytes, offsets) = Safetensors.Build(tensors.Select((t, i) => new Safetensors.Entry($"{t.Key}#{i}", t.DType, t.LocalShape, t.Data)).ToList(),
            new Dictionary<string, string> { ["format"] = "elastic-checkpoint-chunks", ["step"] = $"{step}", ["generation"] = $"{generation}" });
        // Hash while the file uploads.
        var upload = store.PutCreateOnlyAsync(file, bytes, cancellation);
        var chunks = tensors.Select((t, i) =>
        {
            var blocks = BlockDigests(t.Data, blockSize);
            return new ChunkDescriptor
            {
                Key = t.Key,
                DType = t.DType,
                GlobalShape = t.GlobalShape,
                GlobalOffset = t.GlobalOffset,
                LocalShape = t.LocalShape,
                File = file,
                ByteOffset = offsets[i],
                ByteLength = t.Data.Length,
                Sha256 = ChunkDigest(blocks),
                BlockSize = blockSize,
                BlockSha256 = blocks,
            };
        }).ToList();
        await upload;
        return chunks;
    }

    /// <summary>Records one writer's chunk entries next to its chunks (create-only), for <see cref="CommitPartsAsync"/>.</summary>
    public Task WritePartAsync(long step, int generation, string writer, IReadOnlyList<ChunkDescriptor> chunks, CancellationToken cancellation = default) =>
        store.PutCreateOnlyAsync(layout.Part(step, generation, writer), JsonSerializer.SerializeToUtf8Bytes(chunks, CheckpointManifest.Json), cancellation);

    /// <summary>Collects the parts of <paramref name="writers"/> writers into one manifest and commits it.</summary>
    public async Task<CheckpointManifest> CommitPartsAsync(CheckpointManifest header, IReadOnlyList<string> writers, CancellationToken cancellation = default)
    {
        var chunks = new List<ChunkDescriptor>();
        foreach (var writer in writers)
        {
            var name = layout.Part(header.Step, header.Generation, writer);
            var part = await store.GetVersionedAsync(name, cancellation) ?? throw new CheckpointCorruptException($"{name} is missing: writer {writer} did not finish");
            chunks.AddRange(JsonSerializer.Deserialize<List<ChunkDescriptor>>(part.Content, CheckpointManifest.Json) ?? []);
        }
        return await CommitAsync(header with { Chunks = chunks }, cancellation);
    }

    /// <summary>
    /// Makes a checkpoint exist: writes its manifest (create-only) and moves <c>latest</c> to it. Throws
    /// <see cref="StaleGenerationException"/> when <c>latest</c> already belongs to a newer generation.
    /// </summary>
    public async Task<CheckpointManifest> CommitAsync(CheckpointManifest manifest, CancellationToken cancellation = default)
    {
        var name = layout.Manifest(manifest.Step, manifest.Generation);
        await RefuseIfStale(manifest.Generation, cancellation);
        await store.PutCreateOnlyAsync(name, manifest.ToJson(), cancellation);
        var pointer = new CheckpointPointer(manifest.Step, manifest.Generation, name).ToJson();
        await CheckpointResilience.MoveLatest.ExecuteAsync(async ct =>
        {
            var current = await store.GetVersionedAsync(layout.Latest, ct);
            if (current is not null)
            {
                var latest = CheckpointPointer.Parse(current.Content, layout.Latest);
                if (latest.Generation > manifest.Generation)
                    throw new StaleGenerationException($"checkpoint of step {manifest.Step} generation {manifest.Generation} is stale: {layout.Latest} is at generation {latest.Generation}");
                if (latest.Generation == manifest.Generation && latest.Step > manifest.Step) return;
            }
            if (!await store.TrySwapAsync(layout.Latest, pointer, current?.Version, ct)) throw new LatestContendedException();
        }, cancellation);
        return manifest;
    }

    private async Task RefuseIfStale(int generation, CancellationToken cancellation)
    {
        if (await store.GetVersionedAsync(layout.Latest, cancellation) is { } current
            && CheckpointPointer.Parse(current.Content, layout.Latest) is { } latest && latest.Generation > generation)
            throw new StaleGenerationException($"generation {generation} is stale: {layout.Latest} is at generation {latest.Generation}");
    }

    /// <summary>SHA-256 of each block of a chunk, hashed in parallel (one pass over the data).</summary>
    public static string[] BlockDigests(ReadOnlyMemory<byte> data, int blockSize)
    {
        var digests = new string[(data.Length + blockSize - 1) / blockSize];
        Parallel.For(0, digests.Length, b =>
            digests[b] = Convert.ToHexStringLower(SHA256.HashData(data.Span.Slice(b * blockSize, Math.Min(blockSize, data.Length - b * blockSize)))));
        return digests;
    }

    /// <summary>A chunk's digest: SHA-256 over its block digests (a hash list), so the data is hashed once.</summary>
    public static string ChunkDigest(IEnumerable<string> blockDigests) =>
        Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(string.Concat(blockDigests))));
}
