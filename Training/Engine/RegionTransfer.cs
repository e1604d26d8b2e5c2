using System.Buffers.Binary;
using System.Text.Json;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Resharding;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Collectives;

namespace Elastic.Training.Engine;

/// <summary>
/// Moves a job's state from the units that hold it to units of a new layout over the data plane, without storage.
/// Ranks [0, sources) of the group hold state (any layout: another tp, another dp); the rest want their regions of it.
/// Every rank announces its boxes, all compute the same <see cref="RegionTransferPlan"/>, and each source sends each
/// receiver only the pieces the plan gives it, as an in-memory checkpoint part (chunks with block digests). A receiver
/// loads what it got with the same verified, resharding reader that loads stored checkpoints.
/// </summary>
public static class RegionTransfer
{
    private static readonly CheckpointLayout Layout = new("transfer");

    /// <summary>A source's part: sends its pieces of <paramref name="held"/> (state after <paramref name="step"/> steps); returns the bytes sent.</summary>
    public static long Serve(Communicator group, int sources, long step, IReadOnlyList<ShardedTensor> held)
    {
        if (group.Rank >= sources) throw new InvalidOperationException($"rank {group.Rank} of {group.Group} is a receiver, not one of its {sources} source(s)");
        var (plan, _) = Agree(group, sources, step, held.Select(h => (h.Key, h.Region)).ToList());
        var byKey = held.ToDictionary(h => h.Key);
        long sent = 0;
        for (var receiver = 0; receiver < plan.Receivers; receiver++)
        {
            var pieces = plan.Pieces(group.Rank, receiver);
            if (pieces.Count == 0) continue;
            var store = new MemoryBlobStore();
            var writer = WriterName(group.Rank);
            var chunks = new CheckpointWriter(store, Layout).WriteChunksAsync(step, 0, writer, pieces.Select(p => Slice(byKey[p.Key], p.Region)).ToList())
                .GetAwaiter().GetResult();
            var part = new CheckpointManifest
            {
                JobId = group.Group, Step = step, Generation = 0, Plan = "region transfer", CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
            }.ToJson();
            var file = store.Get(Layout.ChunkFile(step, 0, writer));
            var header = new byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(header, part.Length);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), file.Length);
            var to = sources + receiver;
            group.Send(to, header);
            group.Send(to, part);
            group.Send(to, file);
            sent += file.Length;
        }
        return sent;
    }

    /// <summary>A receiver's part: the state after the sources' step, as bytes of each <paramref name="wanted"/> region by key, and the bytes received.</summary>
    public static (long Step, IReadOnlyDictionary<string, byte[]> State, long Bytes) Receive(Communicator group, int sources,
        IReadOnlyList<(string Key, TensorRegion Region)> wanted)
    {
        if (group.Rank < sources) throw new InvalidOperationException($"rank {group.Rank} of {group.Group} is a source, not a receiver");
        var (plan, step) = Agree(group, sources, -1, wanted);
        var store = new MemoryBlobStore();
        var chunks = new List<ChunkDescriptor>();
        long received = 0;
        for (var source = 0; source < sources; source++)
        {
            if (plan.Pieces(source, group.Rank - sources).Count == 0) continue;
            var header = new byte[16];
            group.Receive(source, header);
            var part = new byte[BinaryPrimitives.ReadInt64LittleEndian(header)];
            var file = new byte[BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8))];
            group.Receive(source, part);
            group.Receive(source, file);
            chunks.AddRange(CheckpointManifest.Parse(part, $"the part from source {source} of {group.Group}").Chunks);
            store.PutCreateOnlyAsync(Layout.ChunkFile(step, 0, WriterName(source)), file).GetAwaiter().GetResult();
            received += file.Length;
        }
        var manifest = new CheckpointManifest
        {
            JobId = group.Group, Step = step, Generation = 0, Plan = "region transfer", CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
        };
        var state = EngineCheckpoint.ReadAsync(new CheckpointReader(store, Layout), manifest, wanted).GetAwaiter().GetResult();
        return (step, state, received);
    }

    private static string WriterName(int source) => $"s{source}";

    /// <summary>The bytes of <paramref name="region"/>, which lies inside the held tensor's region.</summary>
    private static ShardedTensor Slice(ShardedTensor held, TensorRegion region)
    {
        var size = DType.SizeOf(held.DType);
        var bytes = new byte[region.Elements * size];
        RegionCopy.Copy(held.Data.Span, held.Region, 0, bytes, region, size);
        return new ShardedTensor(held.Key, held.DType, held.GlobalShape, region.Offset, region.Shape, bytes);
    }

    private sealed record Announcement(long Step, List<Box> Boxes);

    private sealed record Box(string Key, long[] Offset, long[] Shape);

    /// <summary>Every rank's boxes to every rank (two all-gathers: lengths, then the padded announcements), and the plan they imply.</summary>
    private static (RegionTransferPlan Plan, long Step) Agree(Communicator group, int sources, long step, IReadOnlyList<(string Key, TensorRegion Region)> mine)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Announcement(step, mine.Select(m => new Box(m.Key, m.Region.Offset, m.Region.Shape)).ToList()));
        var length = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, json.Length);
        var lengths = new byte[8 * group.WorldSize];
        group.AllGather(length, lengths);
        var sizes = Enumerable.Range(0, group.WorldSize).Select(r => (int)BinaryPrimitives.ReadInt64LittleEndian(lengths.AsSpan(8 * r))).ToArray();
        var width = sizes.Max();
        var padded = new byte[width];
        json.CopyTo(padded, 0);
        var all = new byte[width * group.WorldSize];
        group.AllGather(padded, all);
        var announced = Enumerable.Range(0, group.WorldSize)
            .Select(r => JsonSerializer.Deserialize<Announcement>(all.AsSpan(r * width, sizes[r]))
                ?? throw new InvalidDataException($"rank {r} of {group.Group} announced nothing"))
            .ToList();
        var steps = announced.Take(sources).Select(a => a.Step).Distinct().ToList();
        if (steps.Count != 1)
            throw new InvalidOperationException($"the {sources} source(s) of {group.Group} hold different steps ({string.Join(", ", steps)}) or none");
        IReadOnlyList<(string, TensorRegion)> Boxes(Announcement a) => a.Boxes.Select(b => (b.Key, new TensorRegion(b.Offset, b.Shape))).ToList();
        return (RegionTransferPlan.Make(announced.Take(sources).Select(Boxes).ToList(), announced.Skip(sources).Select(Boxes).ToList()), steps[0]);
    }
}
