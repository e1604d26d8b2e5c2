using System.Security.Cryptography;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Resharding;
using Elastic.Checkpoints.Stores;

namespace Elastic.Checkpoints;

/// <summary>
/// Loads any box of any saved tensor into any layout: for the box a rank needs, it finds the chunks that
/// overlap it, reads only the blocks of those chunks that hold the overlap (ranged reads), verifies each
/// block's SHA-256, and assembles the box. Anything missing, short or corrupt fails closed, naming the chunk.
/// </summary>
public sealed class CheckpointReader(IBlobStore store, CheckpointLayout layout)
{
    /// <summary>The newest committed checkpoint, or null when there is none.</summary>
    public async Task<LatestPointer?> LatestAsync(CancellationToken cancellation = default) =>
        await store.GetVersionedAsync(layout.Latest, cancellation) is { } blob ? LatestPointer.Parse(blob.Content, layout.Latest) : null;

    public async Task<CheckpointManifest> ReadManifestAsync(string name, CancellationToken cancellation = default) =>
        await store.GetVersionedAsync(name, cancellation) is { } blob
            ? CheckpointManifest.Parse(blob.Content, name)
            : throw new CheckpointCorruptException($"manifest {name} does not exist in {store.Location}");

    /// <summary>The bytes (row-major) of <paramref name="wanted"/> within tensor <paramref name="key"/>.</summary>
    public async Task<byte[]> ReadRegionAsync(CheckpointManifest manifest, string key, TensorRegion wanted, CancellationToken cancellation = default)
    {
        var chunks = manifest.Chunks.Where(c => c.Key == key).ToList();
        if (chunks.Count == 0) throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} has no tensor '{key}'");
        var elementSize = DType.SizeOf(chunks[0].DType);
        var target = new byte[wanted.Elements * elementSize];
        long covered = 0;
        foreach (var chunk in chunks)
        {
            if (chunk.Region.Intersect(wanted) is not { } overlap) continue;
            covered += overlap.Elements;
            var runs = RegionCopy.ByteRuns(chunk.Region, overlap, elementSize);
            var (firstBlock, lastBlock) = ((int)(runs[0].Offset / chunk.BlockSize), (int)((runs[^1].Offset + runs[^1].Length - 1) / chunk.BlockSize));
            var source = await ReadVerifiedBlocks(chunk, firstBlock, lastBlock, runs, cancellation);
            RegionCopy.Copy(source, chunk.Region, (long)firstBlock * chunk.BlockSize, target, wanted, elementSize);
        }
        if (covered != wanted.Elements)
            throw new CheckpointCorruptException($"checkpoint of step {manifest.Step}: the chunks of '{key}' cover {covered} of the {wanted.Elements} elements of {wanted}");
        return target;
    }

    /// <summary>Reads blocks [first, last] of a chunk (skipping blocks no run touches), verifying each one.</summary>
    private async Task<byte[]> ReadVerifiedBlocks(ChunkDescriptor chunk, int first, int last, List<(long Offset, long Length)> runs, CancellationToken cancellation)
    {
        var needed = new SortedSet<int>();
        foreach (var (offset, length) in runs)
            for (var b = (int)(offset / chunk.BlockSize); b <= (int)((offset + length - 1) / chunk.BlockSize); b++) needed.Add(b);
        var start = (long)first * chunk.BlockSize;
        var buffer = new byte[Math.Min(chunk.ByteLength, (long)(last + 1) * chunk.BlockSize) - start];
        foreach (var (spanFirst, spanLast) in Spans(needed))
        {
            var from = (long)spanFirst * chunk.BlockSize;
            var length = Math.Min(chunk.ByteLength, (long)(spanLast + 1) * chunk.BlockSize) - from;
            byte[] bytes;
            try
            {
                bytes = await store.GetRangeAsync(chunk.File, chunk.ByteOffset + from, length, cancellation);
            }
            catch (BlobNotFoundException e)
            {
                throw new CheckpointCorruptException($"chunk {chunk}: file {chunk.File} is missing", e);
            }
            if (bytes.Length != length)
                throw new CheckpointCorruptException($"chunk {chunk}: file {chunk.File} is truncated ({bytes.Length} of {length} bytes at offset {chunk.ByteOffset + from})");
            for (var b = spanFirst; b <= spanLast; b++)
            {
                var block = bytes.AsSpan((int)((long)(b - spanFirst) * chunk.BlockSize), (int)Math.Min(chunk.BlockSize, length - (long)(b - spanFirst) * chunk.BlockSize));
                if (Convert.ToHexStringLower(SHA256.HashData(block)) != chunk.BlockSha256[b])
                    throw new CheckpointCorruptException($"chunk {chunk}: block {b} of {chunk.File} fails its SHA-256 check");
            }
            bytes.CopyTo(buffer, from - start);
        }
        return buffer;
    }

    private static IEnumerable<(int First, int Last)> Spans(SortedSet<int> blocks)
    {
        int? first = null, last = null;
        foreach (var b in blocks)
        {
            if (last is { } l && b == l + 1)
            {
                last = b;
                continue;
            }
            if (first is { } f) yield return (f, last!.Value);
            (first, last) = (b, b);
        }
        if (first is { } ff) yield return (ff, last!.Value);
    }
}
