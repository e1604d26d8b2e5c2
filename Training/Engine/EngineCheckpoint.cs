using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Jobs;

namespace Elastic.Training.Engine;

/// <summary>
/// Saves a trainer's state into a checkpoint and restores it, in two halves so that training waits only for
/// the first: <see cref="Capture"/> copies the state to host memory on the device thread; <see cref="SaveAsync"/>
/// writes it (chunks, then manifest, then latest) while training goes on.
/// </summary>
public static class EngineCheckpoint
{
    /// <summary>
    /// Host copies of this rank's state (its region of every tensor), taken after <see cref="Trainer.CompletedSteps"/>
    /// steps. With <paramref name="staging"/> the copies go into buffers kept from the previous capture; without, into
    /// fresh managed arrays.
    /// </summary>
    /// <param name="writer">With <paramref name="writers"/>: this rank's data-parallel replica and their number. Every region is
    /// written exactly once and the work is shared: a tensor-parallel shard's region by one of the replicas that hold it
    /// (every writers-th), a replicated tensor by one of the replicas' tensor-parallel ranks (every (writers x tp)-th). A
    /// pipeline stage writes only what its chunks own (not the last stage's copy of a tied token embedding). Under ZeRO a
    /// replica writes the optimizer state it alone holds (a replicated tensor's by tensor-parallel rank 0). Under expert
    /// parallelism an expert tensor's region (the experts of one expert rank) rotates over the replicas that host it.</param>
    public static IReadOnlyList<ShardedTensor> Capture(Trainer trainer, CheckpointStaging? staging = null, int writer = 0, int writers = 1) =>
        Written(trainer, writer, writers).Select(s => Copy(s, staging)).ToList();

    /// <summary>The keys of what this rank writes when its replica is the checkpoint's only writer: what a copy of its state in host memory saves.</summary>
    public static IReadOnlySet<string> WrittenAlone(Trainer trainer) => Written(trainer, writer: 0, writers: 1).Select(s => s.Key).ToHashSet();

    /// <summary>What this rank writes as <paramref name="writer"/> of <paramref name="writers"/> (see <see cref="Capture"/>).</summary>
    private static IEnumerable<StateTensor> Written(Trainer trainer, int writer, int writers)
    {
        var owned = trainer.StateTensors().Where(s => trainer.Model.Chunks.Any(c => Model.ChunkParameters.Owns(c, s.Owner.Name))).ToList();
        var tensor = trainer.Model.Group;
        // Tensors every replica holds rotate over the replicas in a fixed order: list them alone, so the rotation is the same on all.
        var ep = trainer.Model.Experts.Degree;
        var shared = owned.Where(s => !s.OneCopy).Where((s, i) => s.Owner.Layout.Experts
            ? IsWriterOf(s, i, tensor, writer / ep, Math.Max(1, writers / ep))
            : IsWriterOf(s, i, tensor, writer, writers));
        var own = owned.Where(s => s.OneCopy && (s.Owner.Layout.TensorSplit || tensor.Rank == 0));
        return shared.Concat(own);
    }

    /// <summary>Host copies of everything this rank holds (its region of every tensor, replicated ones included): what it can give a peer.</summary>
    public static IReadOnlyList<ShardedTensor> Held(Trainer trainer) => trainer.StateTensors().Select(s => Copy(s, null)).ToList();

    private static ShardedTensor Copy(StateTensor s, CheckpointStaging? staging)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var region = s.Joined();
        var data = staging is null ? region.detach().cpu().contiguous().bytes.ToArray() : staging.Copy(s.Key, region);
        return new ShardedTensor(s.Key, "F32", s.GlobalShape, s.Region.Offset, s.Region.Shape, data);
    }

    private static bool IsWriterOf(StateTensor state, int index, Parallel.TensorParallel.TensorParallelGroup tensor, int replica, int replicas) =>
        !state.Owner.Layout.TensorSplit
            ? index % (replicas * tensor.Degree) == replica * tensor.Degree + tensor.Rank
            : index % replicas == replica;

    /// <summary>Writes a captured state as one writer's chunks and commits the checkpoint.</summary>
    public static async Task<CheckpointManifest> SaveAsync(CheckpointWriter writer, string jobId, TrainingSpec spec, long step, int generation, string plan,
        IReadOnlyList<ShardedTensor> state, CancellationToken cancellation = default)
    {
        var chunks = await writer.WriteChunksAsync(step, generation, "0", state, cancellation);
        return await writer.CommitAsync(new CheckpointManifest
        {
            JobId = jobId,
            Step = step,
            Generation = generation,
            Plan = plan,
            CreatedAt = DateTimeOffset.UtcNow,
            Chunks = chunks,
            Metadata = new Dictionary<string, string> { ["spec"] = SpecJson.Serialize(spec) },
        }, cancellation);
    }

    /// <summary>The keys and regions a trainer's state is made of (take them on the device thread).</summary>
    public static IReadOnlyList<(string Key, TensorRegion Region)> Layout(Trainer trainer) =>
        trainer.StateTensors().Select(s => (s.Key, s.Region)).ToList();

    /// <summary>Reads (and verifies) this rank's region of every state tensor from a checkpoint of any layout, for <see cref="Trainer.Restore"/> on the device thread.</summary>
    public static async Task<IReadOnlyDictionary<string, byte[]>> ReadAsync(CheckpointReader reader, CheckpointManifest manifest,
        IReadOnlyList<(string Key, TensorRegion Region)> layout, CancellationToken cancellation = default)
    {
        var bytes = await reader.ReadRegionsAsync(manifest, layout.ToList(), cancellation);
        return layout.Select((l, i) => (l.Key, bytes[i])).ToDictionary(e => e.Key, e => e.Item2);
    }
}
