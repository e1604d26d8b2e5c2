using Elastic.Jobs.Reports;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Parallel;

namespace Elastic.Training.Engine;

/// <summary>
/// One data-parallel replica's step: forward/backward over its block of the step's micro-batches (<see cref="ReplicaBlocks"/>),
/// a tree-ordered all-reduce of the block's gradient sums (and losses) over the replicas, then the optimizer update. Without
/// ZeRO 3 or expert parallelism the gradient is reduced run by run as the last backward finishes each unit
/// (<see cref="OverlappedReduction"/>).
/// Because a block is summed as subtrees of the canonical micro-batch tree and the all-reduce combines them in the same tree,
/// every replica ends each step with exactly the bits of a single device, whatever dp is.
/// Under ZeRO each replica updates only its part of the parameters (stage 2 reduces only that part of the gradient
/// to it: a reduce-scatter in the same tree) and the parts are then all-gathered: every value gets the same arithmetic.
/// </summary>
public sealed class DataParallelTrainer : IDisposable
{
    private readonly ProcessGroups _groups;
    private readonly Communicator? _replicas;
    private readonly ReplicaBlocks _blocks;
    private readonly HostWire _wire = new();
    private readonly (BufferParts Gradients, BufferParts Parameters)? _zeroParts;
    private readonly (BufferParts Gradients, BufferParts Parameters)? _zeroExpertParts;
    private readonly (BufferParts Dense, BufferParts Experts, Communicator? ExpertData)? _expertParts;
    private readonly int _padding;
    // Under expert parallelism, the expert-data group's blocks: each the union of an expert group's replicas' blocks.
    private readonly ReplicaBlocks? _expertBlocks;
    // Without ZeRO 3 or expert parallelism: the gradient reduced run by run during the backward.
    private readonly OverlappedReduction? _overlap;
    private bool _detached;

    /// <param name="groups">The unit's process groups: the data-parallel one (rank = replica index) is used here; owned from now on.</param>
    /// <param name="bucketBytes">Where the layout allows, reduce the gradient during the backward in buckets of at least this
    /// size; 0: after the backward, in one piece (the same bits either way).</param>
    public DataParallelTrainer(Trainer trainer, ProcessGroups groups, long bucketBytes = DefaultBucketBytes)
    {
        var dp = groups.Grid.Dp;
        var unit = MicroBatchSplit.Unit(trainer.MicroBatchesPerStep, groups.Grid.Pp, trainer.Stage.Schedule == Parallelism.Pipeline.PipelineSchedule.Interleaved);
        if (dp > MicroBatchSplit.MostReplicas(trainer.MicroBatchesPerStep, unit))
            throw new ArgumentException($"dp {dp} leaves some replicas none of the {trainer.MicroBatchesPerStep} micro-batches per step{(unit > 1 ? $" in blocks of whole multiples of pp {unit} (interleaved)" : "")}", nameof(groups));
        _blocks = new ReplicaBlocks(trainer.MicroBatchesPerStep, dp, unit);
        Trainer = trainer;
        _groups = groups;
        _replicas = groups.Along(GridAxis.Data);
        // ZeRO 3's per-unit gathers and the expert all-to-alls pair up by order: a shorter block runs micro-batches into a dropped
        // gradient to make up the difference (no step time: the step waits for the longest block anyway).
        _padding = trainer.Zero is { Level: >= 3 } || groups.Grid.Ep > 1 ? _blocks.Longest - _blocks.BlockOf(Replica).Count : 0;
        if (trainer.Model.Experts.Degree != groups.Grid.Ep)
            throw new ArgumentException($"the trainer's experts are spread over {trainer.Model.Experts.Degree} ranks; the grid {groups.Grid} has ep {groups.Grid.Ep}", nameof(groups));
        if (groups.Grid.Ep is var ep and > 1)
        {
            var (dense, experts) = trainer.GradientRuns();
            _expertParts = (BufferParts.Spread(dense, dp), BufferParts.Spread(experts, dp / ep), groups.ExpertData);
            var members = Enumerable.Range(0, dp / ep).Select(g => Enumerable.Range(g * ep, ep).ToList()).ToList();
            _expertBlocks = new ReplicaBlocks(trainer.MicroBatchesPerStep, members.Select(m => (_blocks.BlockOf(m[0]).First, m.Sum(r => _blocks.BlockOf(r).Count))).ToList());
            trainer.ArrangeExperts(members[Replica / ep].Select(_blocks.PiecesOf).ToList(), _expertBlocks.PiecesOf(Replica / ep));
        }
        if (trainer.Zero is { } zero)
        {
            if (zero.Ranks != dp || zero.Rank != Replica)
                throw new ArgumentException($"the trainer holds ZeRO part {zero.Rank} of {zero.Ranks}; this group makes it replica {Replica} of {dp}", nameof(groups));
            var ownership = trainer.Ownership!;
            static BufferParts Parts(int ranks, Func<int, IReadOnlyList<(long Offset, long Length)>> runs) =>
                new(Enumerable.Range(0, ranks).Select(r => (IReadOnlyList<(int, int)>)runs(r).Select(x => ((int)x.Offset, (int)x.Length)).ToList()).ToList());
            _zeroParts = (Parts(dp, ownership.Dense.GradientRanges), Parts(dp, ownership.Dense.ParameterRanges));
            // Under expert parallelism the hosted experts are partitioned over the replicas hosting the same ones.
            if (ownership.Experts is { } experts)
                _zeroExpertParts = (Parts(experts.Ranks, experts.GradientRanges), Parts(experts.Ranks, experts.ParameterRanges));
            trainer.GatherOver(_replicas!, _wire);
        }
        // ZeRO 3 gathers parameters over the group during the backward; hosted experts' sums are written after it.
        if (bucketBytes > 0 && _replicas is not null && trainer.Zero is not { Level: >= 3 } && _expertParts is null && _zeroExpertParts is null)
            _overlap = new OverlappedReduction(_replicas, _blocks, trainer.Zero is { Level: 2 } ? _zeroParts!.Value.Gradients : null, bucketBytes);
    }

    /// <summary>The bucket size of the reduction during the backward: PyTorch DDP's default (25 MB).</summary>
    public const long DefaultBucketBytes = 25L << 20;

    public Trainer Trainer { get; }
    public int Replica => _replicas?.Rank ?? 0;
    public int Replicas => _replicas?.WorldSize ?? 1;

    /// <summary>Bytes this rank has sent over its data-parallel group.</summary>
    public long BytesSent => _replicas?.BytesSent ?? 0;

    public StepResult Step(long step)
    {
        if (_replicas is null) return Trainer.Step(step);
        // The block's pieces, each a subtree summed into its own buffer (one, the block itself, when dp is a power of two).
        var pieces = _blocks.PiecesOf(Replica);
        var sums = new List<TorchSharp.torch.Tensor>(pieces.Count);
        try
        {
            // Hosted experts' sums are the pieces of the expert group's block, which may be more.
            var groupPieces = _expertBlocks?.PiecesOf(Replica / _groups.Grid.Ep).Count ?? 0;
            for (var k = 0; k < Math.Max(pieces.Count, groupPieces); k++) sums.Add(Trainer.RentGradient());
            IReadOnlyList<TorchSharp.torch.Tensor> own = [.. sums.Take(pieces.Count)], hosted = [.. sums.Take(groupPieces)];
            var pieceLosses = _overlap is { } overlap
                ? overlap.During(own, () => Trainer.AccumulatePieces(step, pieces, own, ready: overlap.Ready))
                : Trainer.AccumulatePieces(step, pieces, sums, _padding);
            var losses = pieceLosses.Select(loss => new[] { loss }).ToList();
            var sum = sums[0];
            if (_overlap is null) ReduceAfterBackward(own, hosted);
            var loads = Trainer.PieceExpertLoads is { } pieceLoads ? _replicas.AllReduceSum(pieceLoads, _blocks) : null;
            var result = Trainer.ApplyUpdate(step, sum, _replicas.AllReduceSum(losses, _blocks)[0], _zeroParts is null ? null : _replicas, loads);
            // Under ZeRO 1 and 2 each replica updated its part of a whole copy: everyone takes the others' updated parts (ZeRO 3 keeps parts only).
            if (_zeroParts is { } updated && Trainer.Zero!.Level < 3)
            {
                _replicas.TensorAllGatherParts(Trainer.FlatParameters, updated.Parameters);
                if (_zeroExpertParts is { } experts) _groups.ExpertData?.TensorAllGatherParts(Trainer.FlatParameters, experts.Parameters);
            }
            return result;
        }
        finally
        {
            foreach (var sum in sums) Trainer.ReleaseGradient(sum);
        }
    }

    /// <summary>
    /// The gradient reduction where it cannot run during the backward, over the pieces themselves (device threads of one process
    /// read each other's where they lie): ZeRO 2 and 3 reduce each part of the gradient to its owner only (dense and hosted
    /// experts' parts apart); otherwise every replica gets the whole sum.
    /// </summary>
    private void ReduceAfterBackward(IReadOnlyList<TorchSharp.torch.Tensor> own, IReadOnlyList<TorchSharp.torch.Tensor> hosted)
    {
        if (_zeroParts is { } parts && Trainer.Zero!.Level >= 2)
        {
            _replicas!.TensorReduceScatterSumInPlace(own, _blocks, parts.Gradients);
            if (_zeroExpertParts is { } experts) _groups.ExpertData?.TensorReduceScatterSumInPlace(hosted, _expertBlocks!, experts.Gradients);
        }
        else if (_expertParts is { } spread) ReduceExpertsApart(own, hosted, spread);
        else _replicas!.TensorAllReduceSumInPlace(own, _blocks);
    }

    /// <summary>
    /// Under expert parallelism, all-reduces the dense gradients (this replica's pieces) over the data-parallel group and the
    /// hosted experts' (the pieces of its expert group's block) over the expert-data group (the replicas hosting the same
    /// experts), each in the canonical tree; both end in the first buffer.
    /// </summary>
    private void ReduceExpertsApart(IReadOnlyList<TorchSharp.torch.Tensor> dense, IReadOnlyList<TorchSharp.torch.Tensor> experts, (BufferParts Dense, BufferParts Experts, Communicator? ExpertData) parts)
    {
        _replicas!.TensorReduceScatterSumInPlace(dense, _blocks, parts.Dense);
        _replicas.TensorAllGatherParts(dense[0], parts.Dense);
        if (parts.ExpertData is not { } expertData) return;
        expertData.TensorReduceScatterSumInPlace(experts, _expertBlocks!, parts.Experts);
        expertData.TensorAllGatherParts(experts[0], parts.Experts);
    }

    /// <summary>What this rank holds by kind (<see cref="Trainer.Memory"/>), the buffers its collectives keep as staging.</summary>
    public DeviceMemory Memory() => Trainer.Memory(Replicas) with { Staging = _wire.Bytes + (_replicas?.KeptBytes ?? 0) };

    /// <summary>Closes the group and hands the trainer (its state intact) to a replica of the next generation on the same device.</summary>
    public Trainer Detach()
    {
        Close();
        _detached = true;
        return Trainer;
    }

    private void Close()
    {
        // The groups first: a run still on the wire then fails at once.
        _groups.Dispose();
        _overlap?.Dispose();
        _wire.Dispose();
    }

    public void Dispose()
    {
        Close();
        if (!_detached) Trainer.Dispose();
    }
}
