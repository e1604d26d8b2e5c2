using System.Collections.Concurrent;
using System.Security.Cryptography;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Resharding;
using Elastic.Checkpoints.Stores;

namespace Elastic.Checkpoints;

/// <summary>
/// Loads any boxes of any saved tensors into any layout. For the boxes a rank needs it finds the chunks that
/// overlap them, works out which digest blocks of those chunks hold the overlap, merges the blocks of each
/// file into as few ranged reads as possible (several in flight), verifies every block's SHA-256, and
/// assembles the boxes. Anything missing, short or corrupt fails closed, naming the chunk.
/// </summary>
public sealed class CheckpointReader(IBlobStore store, CheckpointLayout layout)
{
    private const long MaxReadBytes = 8 << 20;
    private const int ReadsInFlight = 8;

    /// <summary>The newest committed checkpoint, or null when there is none.</summary>
    public async Task<LatestPointer?> LatestAsync(CancellationToken cancellation = default) =>
        await store.GetVersionedAsync(layout.Latest, cancellation) is { } blob ? LatestPointer.Parse(blob.Content, layout.Latest) : null;

    /// <summary>The latest checkpoint, or (with <paramref name="step"/>) the newest generation's checkpoint of that step; null when there is none.</summary>
    public async Task<(string Name, CheckpointManifest Manifest)?> FindAsync(long? step, CancellationToken cancellation = default)
    {
        string? name;
        if (step is null) name = (await LatestAsync(cancellation))?.Manifest;
        else
        {
            (long Step, int Generation)? newest = null;
            await foreach (var blob in store.ListAsync($"{layout.Root}/step-{step:D8}-g", cancellation))
                if (blob.EndsWith("/manifest.json", StringComparison.Ordinal) && layout.CheckpointOf(blob) is { } id && id.Step == step
                    && (newest is null || id.Generation > newest.Value.Generation))
                    newest = id;
            name = newest is { } found ? layout.Manifest(found.Step, found.Generation) : null;
        }
        return name is null ? null : (name, await ReadManifestAsync(name, cancellation));
    }

    public async Task<CheckpointManifest> ReadManifestAsync(string name, CancellationToken cancellation = default) =>
        await store.GetVersionedAsync(name, cancellation) is { } blob
            ? CheckpointManifest.Parse(blob.Content, name)
            : throw new CheckpointCorruptException($"manifest {name} does not exist in {store.Location}");

    /// <summary>The bytes (row-major) of <paramref name="wanted"/> within tensor <paramref name="key"/>.</summary>
    public async Task<byte[]> ReadRegionAsync(CheckpointManifest manifest, string key, TensorRegion wanted, CancellationToken cancellation = default) =>
        (await ReadRegionsAsync(manifest, [(key, wanted)], cancellation))[0];

    /// <summary>The bytes (row-major) of each wanted box, in the order asked.</summary>
    public async Task<byte[][]> ReadRegionsAsync(CheckpointManifest manifest, IReadOnlyList<(string Key, TensorRegion Region)> wanted, CancellationToken cancellation = default)
    {
        var plans = wanted.Select(w => Plan(manifest, w.Key, w.Region)).ToList();
        var blocks = plans.SelectMany(p => p.Pieces).SelectMany(piece => piece.Blocks.Select(b => (piece.Chunk, Block: b))).Distinct().ToList();
        var fetched = await Fetch(blocks, cancellation);
        foreach (var (chunk, block) in blocks)
        {
            var (start, length) = BlockRange(chunk, block);
            if (Convert.ToHexStringLower(SHA256.HashData(fetched[chunk.File].Slice(start, length))) != chunk.BlockSha256[block])
                throw new CheckpointCorruptException($"chunk {chunk}: block {block} of {chunk.File} fails its SHA-256 check");
        }
        return plans.Select(plan =>
        {
            var target = new byte[plan.Region.Elements * plan.ElementSize];
            foreach (var piece in plan.Pieces)
            {
                var (start, _) = BlockRange(piece.Chunk, piece.Blocks[0]);
                var (lastStart, lastLength) = BlockRange(piece.Chunk, piece.Blocks[^1]);
                var source = fetched[piece.Chunk.File].Slice(start, lastStart + lastLength - start);
                RegionCopy.Copy(source, piece.Chunk.Region, start - piece.Chunk.ByteOffset, target, plan.Region, plan.ElementSize);
            }
            return target;
        }).ToArray();
    }

    private sealed record Piece(ChunkDescriptor Chunk, int[] Blocks);

    private sealed record ReadPlan(TensorRegion Region, int ElementSize, List<Piece> Pieces);

    /// <summary>Which blocks of which chunks hold <paramref name="wanted"/>; fails when the chunks do not cover it.</summary>
    private static ReadPlan Plan(CheckpointManifest manifest, string key, TensorRegion wanted)
    {
        var chunks = manifest.Chunks.Where(c => c.Key == key).ToList();
        if (chunks.Count == 0) throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} has no tensor '{key}'");
        var elementSize = DType.SizeOf(chunks[0].DType);
        var pieces = new List<Piece>();
        long covered = 0;
        foreach (var chunk in chunks)
        {
            if (chunk.Region.Intersect(wanted) is not { } overlap) continue;
            if (CheckpointWriter.ChunkDigest(chunk.BlockSha256) != chunk.Sha256)
                throw new CheckpointCorruptException($"chunk {chunk}: its block digests do not match its SHA-256 in the manifest");
            covered += overlap.Elements;
            var runs = RegionCopy.ByteRuns(chunk.Region, overlap, elementSize);
            var (first, last) = ((int)(runs[0].Offset / chunk.BlockSize), (int)((runs[^1].Offset + runs[^1].Length - 1) / chunk.BlockSize));
            // Every block between the first and the last is read: runs of a box are evenly spread, so gaps rarely span a whole block.
            pieces.Add(new Piece(chunk, Enumerable.Range(first, last - first + 1).ToArray()));
        }
        if (covered != wanted.Elements)
            throw new CheckpointCorruptException($"checkpoint of step {manifest.Step}: the chunks of '{key}' cover {covered} of the {wanted.Elements} elements of {wanted}");
        return new ReadPlan(wanted, elementSize, pieces);
    }

    /// <summary>Absolute byte range of one digest block of a chunk within its file.</summary>
    private static (long Start, int Length) BlockRange(ChunkDescriptor chunk, int block)
    {
        var start = (long)block * chunk.BlockSize;
        return (chunk.ByteOffset + start, (int)Math.Min(chunk.BlockSize, chunk.ByteLength - start));
    }

    /// <summary>Reads the given blocks with as few ranged reads per file as their adjacency allows, several at a time.</summary>
    private async Task<Dictionary<string, FetchedFile>> Fetch(List<(ChunkDescriptor Chunk, int Block)> blocks, CancellationToken cancellation)
    {
        var reads = new List<(string File, long Start, long Length, ChunkDescriptor Chunk)>();
        foreach (var file in blocks.GroupBy(b => b.Chunk.File))
        {
            var ranges = file.Select(b => (Range: BlockRange(b.Chunk, b.Block), b.Chunk)).OrderBy(r => r.Range.Start).ToList();
            var (start, end, chunk) = (ranges[0].Range.Start, ranges[0].Range.Start + ranges[0].Range.Length, ranges[0].Chunk);
            foreach (var (range, owner) in ranges.Skip(1))
            {
                if (range.Start <= end && end - start < MaxReadBytes)
                {
                    end = Math.Max(end, range.Start + range.Length);
                    continue;
                }
                reads.Add((file.Key, start, end - start, chunk));
                (start, end, chunk) = (range.Start, range.Start + range.Length, owner);
            }
            reads.Add((file.Key, start, end - start, chunk));
        }
        var pieces = new ConcurrentBag<(string File, long Start, byte[] Bytes)>();
        await Parallel.ForEachAsync(reads, new ParallelOptions { MaxDegreeOfParallelism = ReadsInFlight, CancellationToken = cancellation }, async (read, ct) =>
        {
            byte[] bytes;
            try
            {
                bytes = await store.GetRangeAsync(read.File, read.Start, read.Length, ct);
            }
            catch (BlobNotFoundException e)
            {
                throw new CheckpointCorruptException($"chunk {read.Chunk}: file {read.File} is missing", e);
            }
            if (bytes.Length != read.Length)
                throw new CheckpointCorruptException($"chunk {read.Chunk}: file {read.File} is truncated ({bytes.Length} of {read.Length} bytes at offset {read.Start})");
            pieces.Add((read.File, read.Start, bytes));
        });
        return pieces.GroupBy(p => p.File).ToDictionary(g => g.Key, g => new FetchedFile(g.Select(p => (p.Start, p.Bytes)).OrderBy(p => p.Start).ToList()));
    }

    /// <summary>The byte ranges read from one file; slices are served from one read, or stitched when they straddle two.</summary>
    private sealed class FetchedFile(List<(long Start, byte[] Bytes)> pieces)
    {
        public ReadOnlySpan<byte> Slice(long start, long length)
        {
            foreach (var (at, bytes) in pieces)
                if (start >= at && start + length <= at + bytes.Length) return bytes.AsSpan((int)(start - at), (int)length);
            var stitched = new byte[length];
            foreach (var (at, bytes) in pieces)
            {
                var from = Math.Max(start, at);
                var to = Math.Min(start + length, at + bytes.Length);
                if (from < to) bytes.AsSpan((int)(from - at), (int)(to - from)).CopyTo(stitched.AsSpan((int)(from - start)));
            }
            return stitched;
        }
    }
}
