using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Jobs.Reports;
using Elastic.Training.Parallel.Pipeline;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>What a trainer holds: its memory by kind, its state as checkpoint regions, and its parameters whole (export, digests).</summary>
public sealed partial class Trainer
{
    /// <summary>
    /// What this rank holds, by kind: its parameters, every gradient buffer its pools keep (the step's sum, the tree's partial
    /// sums, per-chunk buffers), its AdamW moments (its part under ZeRO), and the activations its schedule keeps in flight (estimated).
    /// </summary>
    public DeviceMemory Memory(int replicas)
    {
        var gradients = _gradients.AllocatedBytes + _chunks.Sum(c => c.Gradients.AllocatedBytes) + (_expertGradients?.AllocatedBytes ?? 0);
        var parameterBytes = _optimizer.FlatParameters.numel() * sizeof(float) + (_gather?.ScratchBytes ?? 0);
        return new DeviceMemory(parameterBytes, gradients, _optimizer.MomentBytes, MemoryEstimate.For(Spec, replicas).ActivationBytes, Staging: 0);
    }

    /// <summary>Optimizer steps taken, including those restored from a checkpoint.</summary>
    public long CompletedSteps => _optimizer.StepCount;

    /// <summary>
    /// Everything a step depends on, as named fp32 regions in canonical order: this rank's part of the parameters and of
    /// their AdamW moments. The learning rate, the data position and every random stream are functions of the step and
    /// the spec, so the step count (<see cref="CompletedSteps"/>) is the rest of the state.
    /// </summary>
    public IEnumerable<StateTensor> StateTensors()
    {
        // Under ZeRO 3 a rank holds the parameters it owns, and no other rank of its data-parallel group holds them.
        foreach (var p in Model.Parameters.Where(p => _gather is null || Partition!.OwnerOf(p.Name) == Zero!.Rank))
            yield return new StateTensor($"{Elastic.Checkpoints.CheckpointExport.ParameterPrefix}{p.Name}", p, p.Local, OneCopy: _gather is not null);
        var moments = _optimizer.Moments.ToDictionary(m => m.Name);
        // Under ZeRO a rank has the moments of the parameters it updates, and no other rank of its data-parallel group has them.
        foreach (var p in Model.Parameters.Where(p => moments.ContainsKey(p.Named().First().Key)))
        {
            var parts = p.Named().Select(n => moments[n.Key]).ToList();
            yield return new StateTensor($"adam.m/{p.Name}", p, parts.Select(m => m.M).ToList(), OneCopy: Zero is not null);
            yield return new StateTensor($"adam.v/{p.Name}", p, parts.Select(m => m.V).ToList(), OneCopy: Zero is not null);
        }
    }

    /// <summary>Overwrites the state (through <paramref name="read"/>: key, region -> its little-endian fp32 bytes) and the step count.</summary>
    public void Restore(long completedSteps, Func<string, Elastic.Checkpoints.Format.TensorRegion, byte[]> read)
    {
        using var noGrad = no_grad();
        foreach (var state in StateTensors())
        {
            using var scope = NewDisposeScope();
            var bytes = read(state.Key, state.Region);
            var host = empty(state.Region.Shape, dtype: ScalarType.Float32);
            if (bytes.Length != host.bytes.Length) throw new InvalidDataException($"{state.Key} {state.Region}: {bytes.Length} bytes for {state.Region.Elements} fp32 values");
            host.bytes = bytes;
            state.CopyFrom(host.to(Device));
        }
        _optimizer.RestoreStepCount(completedSteps);
    }

    /// <summary>
    /// Every parameter whole, in name order, on the first stage (the others send theirs there and get nothing): a
    /// collective over the stage's tensor-parallel group and the pipeline, for export and digests.
    /// </summary>
    public IEnumerable<(string Name, Tensor Tensor)> WholeParameters()
    {
        if (_gather is null) return _links is null ? Model.WholeParameters() : WholeModel.Gather(Model, Stage, _links);
        // ZeRO 3: every parameter gathered for the time it takes to copy them out.
        using var all = Model.GatherAll();
        return (_links is null ? Model.WholeParameters() : WholeModel.Gather(Model, Stage, _links)).Select(p => (p.Name, p.Tensor.clone())).ToList();
    }

    /// <summary>The digest of the whole model (<see cref="Engine.ParameterDigest"/>), the same on every rank of the replica.</summary>
    public string ParameterDigest()
    {
        using var scope = NewDisposeScope();
        if (Stage.Ranks is not { } ranks) return Engine.ParameterDigest.Compute(WholeParameters());
        var digest = new byte[32];
        var parameters = WholeParameters();
        if (ranks.Rank == 0) Convert.FromHexString(Engine.ParameterDigest.Compute(parameters)).CopyTo(digest, 0);
        ranks.Broadcast(digest, root: 0);
        return Convert.ToHexStringLower(digest);
    }
}
