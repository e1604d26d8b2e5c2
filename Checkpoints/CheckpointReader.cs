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
    public async Task<CheckpointPointer?> LatestAsync(CancellationToken cancellation = default) =>
        await store.GetVersionedAsync(layout.Latest, cancellation) is { } blob ? CheckpointPointer.Parse(blob.Content, layout.Latest) : null;

    /// <summary>
    /// The latest checkpoint (the newest committed one at or before it when <c>latest</c> names one found damaged), or (with
    /// <paramref name="step"/>) the newest generation's checkpoint of that step; null when there is none.
    /// </summary>
    public async Task<(string Name, CheckpointManifest Manifest)?> FindAsync(long? step, CancellationToken cancellation = default)
    {
        var latest = step is null ? await LatestAsync(cancellation) : null;
        if (step is null && latest is null) return null;
        var committed = await CommittedAsync(cancellation);
        var name = latest is not null
            ? committed.FirstOrDefault(c => c.Step < latest.Step || (c.Step == latest.Step && c.Generation <= latest.Generation))?.Manifest
            : committed.FirstOrDefault(c => c.Step == step)?.Manifest;
        return name is null ? null : (name, await ReadManifestAsync(name, cancellation));
    }

    /// <summary>
    /// The newest checkpoint at or before step <paramref name="atMost"/>, or null: what a job with that many steps on record
    /// resumes from. A newer one can exist after the job came back from an older checkpoint (it gave the later steps back,
    /// and resuming past them would skip steps its record lacks: found by the chaos soak).
    /// </summary>
    public async Task<(string Name, CheckpointManifest Manifest)?> NewestAtMostAsync(long atMost, CancellationToken cancellation = default) =>
        NewestAtMost(await CommittedAsync(cancellation), atMost)?.Manifest is { } name ? (name, await ReadManifestAsync(name, cancellation)) : null;

    /// <summary>Of <paramref name="committed"/> (newest first, as <see cref="CommittedAsync"/> lists them), the newest at or before step <paramref name="atMost"/>.</summary>
    public static CheckpointPointer? NewestAtMost(IReadOnlyList<CheckpointPointer> committed, long atMost) => committed.FirstOrDefault(c => c.Step <= atMost);

    /// <summary>Every committed checkpoint, newest first (by step, then generation as a number): see <see cref="Committed"/>.</summary>
    public async Task<IReadOnlyList<CheckpointPointer>> CommittedAsync(CancellationToken cancellation = default)
    {
        var blobs = new List<string>();
        await foreach (var blob in store.ListAsync(layout.Root + "/", cancellation)) blobs.Add(blob);
        return Committed(layout, blobs);
    }

    /// <summary>
    /// Of the blobs under <paramref name="layout"/>'s root, the committed checkpoints, newest first: those with a manifest and no
    /// mark of damage (<see cref="CheckpointLayout.DamagedMarker"/>).
    /// </summary>
    public static IReadOnlyList<CheckpointPointer> Committed(CheckpointLayout layout, IReadOnlyCollection<string> blobs)
    {
        var names = blobs.ToHashSet(StringComparer.Ordinal);
        return blobs.Select(blob => (Blob: blob, Id: layout.CheckpointOf(blob)))
            .Where(b => b.Id is { } id && b.Blob == layout.Manifest(id.Step, id.Generation) && !names.Contains(layout.DamagedMarker(id.Step, id.Generation)))
            .Select(b => new CheckpointPointer(b.Id!.Value.Step, b.Id.Value.Generation, b.Blob))
            .OrderByDescending(c => c.Step).ThenByDescending(c => c.Generation).ToList();
    }

    /// <summary>
    /// Marks a checkpoint whose data a restore found damaged (<paramref name="why"/>): it stops being committed, so no restore
    /// chooses it again and retention keeps a sound one in its place.
    /// </summary>
    /// <remarks>The first mark stays: another coordinator that found the same damage has said why already.</remarks>
    public Task MarkDamagedAsync(CheckpointPointer checkpoint, string why, CancellationToken cancellation = default) =>
        store.TrySwapAsync(layout.DamagedMarker(checkpoint.Step, checkpoint.Generation), System.Text.Encoding.UTF8.GetBytes(why), expectedVersion: null, cancellation);

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

    /// <summary>
    /// Reads the given blocks with as few ranged reads per file as their adjacency allows, several at a time, and
    /// verifies every block of each read against its digest (a read that fails is read again, see <see cref="CheckpointResilience.FetchRange"/>).
    /// </summary>
    private async Task<Dictionary<string, FetchedFile>> Fetch(List<(ChunkDescriptor Chunk, int Block)> blocks, CancellationToken cancellation)
    {
        var reads = new List<RangedRead>();
        foreach (var file in blocks.GroupBy(b => b.Chunk.File))
        {
            RangedRead? read = null;
            foreach (var (range, chunk, block) in file.Select(b => (Range: BlockRange(b.Chunk, b.Block), b.Chunk, b.Block)).OrderBy(r => r.Range.Start))
            {
                if (read is not null && range.Start <= read.End && read.End - read.Start < MaxReadBytes)
                    read.End = Math.Max(read.End, range.Start + range.Length);
                else
                    reads.Add(read = new RangedRead(file.Key, range.Start) { End = range.Start + range.Length });
                read.Blocks.Add((chunk, block));
            }
        }
        var pieces = new ConcurrentBag<(string File, long Start, byte[] Bytes)>();
        await Parallel.ForEachAsync(reads, new ParallelOptions { MaxDegreeOfParallelism = ReadsInFlight, CancellationToken = cancellation }, async (read, ct) =>
        {
            try
            {
                pieces.Add((read.File, read.Start, await CheckpointResilience.FetchRange.ExecuteAsync(c => ReadVerified(read, c), ct)));
            }
            catch (BlockDigestMismatchException e)
            {
                throw new CheckpointCorruptException(e.Message, e);
            }
        });
        return pieces.GroupBy(p => p.File).ToDictionary(g => g.Key, g => new FetchedFile(g.Select(p => (p.Start, p.Bytes)).OrderBy(p => p.Start).ToList()));
    }

    private async ValueTask<byte[]> ReadVerified(RangedRead read, CancellationToken cancellation)
    {
        var first = read.Blocks[0].Chunk;
        byte[] bytes;
        try
        {
            bytes = await store.GetRangeAsync(read.File, read.Start, read.End - read.Start, cancellation);
        }
        catch (BlobNotFoundException e)
        {
            throw new CheckpointCorruptException($"chunk {first}: file {read.File} is missing", e);
        }
        if (bytes.Length != read.End - read.Start)
            throw new CheckpointCorruptException($"chunk {first}: file {read.File} is truncated ({bytes.Length} of {read.End - read.Start} bytes at offset {read.Start})");
        foreach (var (chunk, block) in read.Blocks)
        {
            var (start, length) = BlockRange(chunk, block);
            if (Convert.ToHexStringLower(SHA256.HashData(bytes.AsSpan((int)(start - read.Start), length))) != chunk.BlockSha256[block])
                throw new BlockDigestMismatchException($"chunk {chunk}: block {block} of {chunk.File} fails its SHA-256 check");
        }
        return bytes;
    }

    /// <summary>One ranged read of a file and the digest blocks it holds.</summary>
    private sealed class RangedRead(string file, long start)
    {
        public string File { get; } = file;
        public long Start { get; } = start;
        public long End { get; set; }
        public List<(ChunkDescriptor Chunk, int Block)> Blocks { get; } = [];
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
