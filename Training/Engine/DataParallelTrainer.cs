using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Parallel;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// One data-parallel replica's step: forward/backward over its aligned block of the step's micro-batches,
/// then a tree-ordered all-reduce of the block gradient sums (and losses) over the replicas, then the
/// optimizer update. Because the blocks are subtrees of the canonical micro-batch tree and the all-reduce
/// combines them in the same tree, every replica ends each step with exactly the bits of a single device.
/// </summary>
public sealed class DataParallelTrainer : IDisposable
{
    private readonly ProcessGroups _groups;
    private readonly Communicator? _replicas;
    private byte[] _wire = [];
    private Tensor? _staging;
    private bool _detached;

    /// <param name="groups">The unit's process groups: the data-parallel one (rank = replica index) is used here; owned from now on.</param>
    public DataParallelTrainer(Trainer trainer, ProcessGroups groups)
    {
        var dp = groups.Grid.Dp;
        if (!PairwiseTree.IsAlignedBlockCount(trainer.MicroBatchesPerStep, dp))
            throw new ArgumentException($"dp {dp} must be a power of two dividing the {trainer.MicroBatchesPerStep} micro-batches per step", nameof(groups));
        Trainer = trainer;
        _groups = groups;
        _replicas = groups.Along(GridAxis.Data);
    }

    public Trainer Trainer { get; }
    public int Replica => _replicas?.Rank ?? 0;
    public int Replicas => _replicas?.WorldSize ?? 1;

    public StepResult Step(long step)
    {
        if (_replicas is null) return Trainer.Step(step);
        var perReplica = Trainer.MicroBatchesPerStep / Replicas;
        var sum = Trainer.RentGradient();
        try
        {
            var lossSum = Trainer.AccumulateBlock(step, Replica * perReplica, perReplica, sum);
            AllReduce(sum);
            return Trainer.ApplyUpdate(step, sum, _replicas.AllReduceSum(lossSum));
        }
        finally
        {
            Trainer.ReleaseGradient(sum);
        }
    }

    /// <summary>
    /// Sums a flat fp32 gradient over the replicas through a managed wire buffer (the data plane moves bytes; a socket
    /// that fails mid-collective may still write into it, which must never be native memory that can be freed). A device
    /// gradient goes through a pinned host copy kept across steps: no allocation and no page faults per step.
    /// </summary>
    private void AllReduce(Tensor gradient)
    {
        var host = gradient.device_type == TorchSharp.DeviceType.CPU ? gradient : Staged(gradient);
        var bytes = host.bytes;
        if (_wire.Length != bytes.Length) _wire = new byte[bytes.Length];
        bytes.CopyTo(_wire);
        _replicas!.AllReduceSum(_wire);
        _wire.CopyTo(host.bytes);
        if (!ReferenceEquals(host, gradient)) gradient.copy_(host);
    }

    private Tensor Staged(Tensor gradient)
    {
        if (_staging is null)
        {
            using var pageable = empty(gradient.shape, dtype: gradient.dtype);
            _staging = pageable.pin_memory().DetachFromDisposeScope();
        }
        return _staging.copy_(gradient);
    }

    /// <summary>Closes the group and hands the trainer (its state intact) to a replica of the next generation on the same device.</summary>
    public Trainer Detach()
    {
        _groups.Dispose();
        _staging?.Dispose();
        _detached = true;
        return Trainer;
    }

    public void Dispose()
    {
        _groups.Dispose();
        _staging?.Dispose();
        if (!_detached) Trainer.Dispose();
    }
}
