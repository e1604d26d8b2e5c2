using System.Buffers.Binary;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Collectives;

namespace Elastic.Training.Engine;

/// <summary>
/// Hands a surviving replica's state (parameters, AdamW moments, step count) to new ranks over the data plane,
/// without storage. Rank 0 of the transfer group is the source: it writes its state as an in-memory checkpoint
/// (one chunk file and its manifest, with block digests) and broadcasts both; every other rank loads it with
/// the same verified, resharding reader that loads stored checkpoints. Runs on the device thread.
/// </summary>
public static class PeerStateTransfer
{
    private static readonly CheckpointLayout Layout = new("peer");

    /// <summary>Rank 0's part: sends the trainer's state to every other rank of <paramref name="group"/>.</summary>
    public static void Send(Trainer trainer, Communicator group)
    {
        if (group.Rank != 0) throw new InvalidOperationException($"rank {group.Rank} of {group.Group} cannot be the source; rank 0 is");
        var store = new MemoryBlobStore();
        var step = trainer.CompletedSteps;
        var chunks = new CheckpointWriter(store, Layout).WriteChunksAsync(step, 0, "source", EngineCheckpoint.Capture(trainer)).GetAwaiter().GetResult();
        var manifest = new CheckpointManifest
        {
            JobId = group.Group, Step = step, Generation = 0, Plan = "peer transfer", CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
        }.ToJson();
        var file = store.Get(Layout.ChunkFile(step, 0, "source"));
        var header = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(header, manifest.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), file.Length);
        group.Broadcast(header, 0);
        group.Broadcast(manifest, 0);
        group.Broadcast(file, 0);
    }

    /// <summary>Every other rank's part: receives the source's state, verifies every block, and restores it into <paramref name="trainer"/>.</summary>
    public static void Receive(Trainer trainer, Communicator group)
    {
        var header = new byte[16];
        group.Broadcast(header, 0);
        var manifestJson = new byte[BinaryPrimitives.ReadInt64LittleEndian(header)];
        var file = new byte[BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8))];
        group.Broadcast(manifestJson, 0);
        group.Broadcast(file, 0);
        var manifest = CheckpointManifest.Parse(manifestJson, $"state from {group.Group}");
        var store = new MemoryBlobStore();
        store.PutCreateOnlyAsync(Layout.ChunkFile(manifest.Step, 0, "source"), file).GetAwaiter().GetResult();
        var state = EngineCheckpoint.ReadAsync(new CheckpointReader(store, Layout), manifest, EngineCheckpoint.Layout(trainer)).GetAwaiter().GetResult();
        trainer.Restore(manifest.Step, (key, _) => state[key]);
    }
}
