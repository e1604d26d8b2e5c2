using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Model;
using Elastic.Training.Optim;
using Elastic.Training.Parallel.Experts;
using Elastic.Training.Parallel.Pipeline;
using Elastic.Training.Parallel.Sharded;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The step mechanics of one model replica on one device. A step is split in two halves so that data
/// parallelism can sit between them: <see cref="AccumulateBlock"/> runs forward/backward over a tree-aligned
/// range of micro-batches and sums their gradients in the canonical tree order; <see cref="ApplyUpdate"/>
/// takes the sum over all micro-batches (combined with <see cref="CombineBlocks"/>) and applies scaling,
/// clipping and AdamW. <see cref="Step"/> does both on one device. A pipeline stage holds its chunks' parameters
/// only and runs the stage's schedule (<see cref="StageRunner"/>); its flat gradient holds the chunks' regions one
/// after another. Must be used from one device thread.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    private readonly TokenCorpus _corpus;
    private readonly FlatGradients _gradients;
    private readonly AdamW _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly IReadOnlyList<ChunkGradients> _chunks;
    private StageRunner _runner;
    private TiedEmbeddingGradients _tied;
    private StageLinks? _links;
    private readonly ParameterGather? _gather;
    private readonly ExpertGradients? _expertGradients;

    /// <param name="tensorGroup">This rank's tensor-parallel group; null: one device holding every shard.</param>
    /// <param name="sequenceParallel">With tp > 1, split LayerNorm, dropout and the residual stream along the sequence.</param>
    /// <param name="pipeline">This rank's pipeline stage; null: one stage holding the whole model.</param>
    /// <param name="zero">This rank's ZeRO shard; null: it keeps and updates the whole optimizer state.</param>
    /// <param name="experts">With MoE layers, the expert group this rank hosts its experts in; null: it holds every expert.</param>
    public Trainer(TrainingSpec spec, TokenCorpus corpus, Device? device = null, TensorParallelGroup? tensorGroup = null, bool sequenceParallel = true,
        PipelineStage? pipeline = null, ZeroShard? zero = null, ExpertGroup? experts = null)
    {
        Spec = spec;
        _corpus = corpus;
        Device = device ?? CPU;
        Stage = pipeline ?? new PipelineStage(spec, null);
        Model = new DecoderModel(spec.Model, spec.Seed, ComputePrecisions.Parse(spec.Runtime.Precision), Device, tensorGroup, sequenceParallel, Stage.Local, experts)
        {
            Recompute = ActivationRecomputes.Parse(SpecLayout.At(spec, 1).Recompute),
        };
        // Imported starting weights replace the seed's before the optimizer takes the parameters over: every layout starts from them.
        if (spec.Model.Init?.From is not null) Model.Load(Checkpoints.HuggingFace.ModelImport.Weights(spec.Model));
        // Chunk-major: each chunk's gradients are one region of the stage's flat buffer.
        var parameters = Stage.Local.SelectMany(Model.ParametersOf).ToList();
        Zero = zero;
        if (zero is not null)
        {
            if (zero.Level >= 3 && Model.Experts.Degree > 1)
                throw new ArgumentException($"ZeRO 3 does not run with expert parallelism (ep {Model.Experts.Degree}) yet", nameof(zero));
            var expertNames = Model.Parameters.Where(p => p.Layout.Experts).Select(p => p.Name).ToHashSet();
            Ownership = new OptimizerOwnership(PartitionEntries(parameters), expertNames.Contains, zero, Model.Experts.Degree);
            _optimizer = new AdamW(parameters, spec.Optimizer, Ownership.ParameterRanges(), ownedOnly: zero.Level >= 3);
        }
        else
            _optimizer = new AdamW(parameters, spec.Optimizer);
        var headLeaves = Model.SeparateTiedHead();
        // The head chunk is the stage's last, so its leaves over a tied embedding end the stage's buffer, after every parameter.
        var entries = Stage.Local.Select(chunk => Model.ParametersOf(chunk).Select(p => (p.Name, (Tensor)p.Parameter)).Concat(chunk.Head ? headLeaves : []).ToList()).ToList();
        var chunks = new List<ChunkGradients>();
        long offset = 0;
        for (var c = 0; c < entries.Count; c++)
        {
            chunks.Add(new ChunkGradients(Stage.Local[c], new FlatGradients(entries[c], Device), offset));
            offset += chunks[^1].Gradients.Length;
        }
        _chunks = chunks;
        _gradients = new FlatGradients(entries.SelectMany(e => e).ToList(), Device);
        _schedule = new LearningRateSchedule(spec.Optimizer, spec.Steps);
        ParameterCount = parameters.Sum(p => p.Parameter.numel());
        if (Model.Experts.Degree > 1)
        {
            _expertGradients = new ExpertGradients(Model, Model.Experts.Degree, Device);
            foreach (var layer in Model.MoeLayers.Values) layer.Gradients = _expertGradients;
        }
        (_links, _runner, _tied) = Connect();
        if (zero is { Level: >= 3 })
        {
            _gather = new ParameterGather(Model.Parameters, Partition!, zero.Rank, Device, Model.TiedHeadLeaves(), Model.UnitParameters);
            Model.GatherParametersWith(_gather.Enter);
        }
    }

    /// <summary>ZeRO 3: the data-parallel group this rank's parameter gathers run over, and the wire buffer its collectives share.</summary>
    internal void GatherOver(Collectives.Communicator replicas, HostWire wire) => _gather?.Connect(replicas, wire);

    public PipelineStage Stage { get; private set; }

    /// <summary>This rank's ZeRO shard, or null when it updates every parameter it holds.</summary>
    public ZeroShard? Zero { get; }

    /// <summary>Under ZeRO, which rank updates which of the stage's parameters.</summary>
    public OptimizerOwnership? Ownership { get; }

    /// <summary>Under ZeRO, which data-parallel rank updates which of the stage's parameters (the hosted experts excepted under expert parallelism).</summary>
    public OptimizerPartition? Partition => Ownership?.Dense;

    /// <summary>The stage's parameters as one flat fp32 buffer, in the order of the flat gradients (what ZeRO all-gathers after an update).</summary>
    public Tensor FlatParameters => _optimizer.FlatParameters;

    /// <summary>
    /// The partition's entries: each parameter's local shards as one run, in buffer order, and with tied embeddings the head's
    /// leaves over the token embedding, which end the buffer of the stage holding the head.
    /// </summary>
    private List<OptimizerPartition.Entry> PartitionEntries(IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter, bool Decay)> parameters)
    {
        var tied = Spec.Model.TiedEmbeddings;
        var lengths = parameters.ToDictionary(p => p.Name, p => p.Parameter.numel());
        var entries = new List<OptimizerPartition.Entry>();
        long offset = 0;
        foreach (var key in parameters.Select(p => p.Name))
        {
            var owner = Model.Parameters.First(p => p.Named().Any(n => n.Key == key));
            if (entries.Count > 0 && entries[^1].Name == owner.Name) entries[^1] = entries[^1] with { Length = entries[^1].Length + lengths[key] };
            else entries.Add(new OptimizerPartition.Entry(owner.Name, offset, lengths[key], tied && owner.Name == "wte.weight", GradientOnly: false));
            offset += lengths[key];
        }
        if (tied && Stage.Local.Any(c => c.Head))
            entries.Add(new OptimizerPartition.Entry(DecoderModel.TiedHeadPrefix + "wte.weight", offset, entries.Single(e => e.Name == "wte.weight").Length, Tied: true, GradientOnly: true));
        return entries;
    }

    /// <summary>Called on the device thread after each forward or backward of the stage's schedule with its compute span (Stopwatch timestamps).</summary>
    public Action<Parallelism.Pipeline.PipelineOp, long, long>? StageObserver
    {
        get => _runner.Observer;
        set => _runner.Observer = value;
    }

    /// <summary>
    /// Moves the trainer to the groups of a new generation (the same shards of the same stage, new communicators): a unit
    /// that adopts the state its device kept across a re-plan joins the new groups first.
    /// </summary>
    public void Rejoin(TensorParallelGroup tensor, PipelineStage stage, ExpertGroup? experts = null)
    {
        if (stage.Stages != Stage.Stages || stage.Rank != Stage.Rank || !stage.Local.SequenceEqual(Stage.Local))
            throw new ArgumentException($"this trainer holds chunk(s) {string.Join(", ", Stage.Local)} as stage {Stage.Rank} of {Stage.Stages}; the new group makes it stage {stage.Rank} of {stage.Stages}", nameof(stage));
        Model.Rejoin(tensor);
        if (experts is not null) Model.Rejoin(experts);
        Stage = stage;
        var observer = StageObserver;
        _links?.Dispose();
        (_links, _runner, _tied) = Connect();
        StageObserver = observer;
    }

    private (StageLinks?, StageRunner, TiedEmbeddingGradients) Connect()
    {
        var links = Stage.Ranks is { } ranks ? new StageLinks(ranks, Device) : null;
        return (links, new StageRunner(Model, Stage, links, _chunks, Spec.Model.Context, MicroBatchOf, EnterTf32Gate, _expertGradients), new TiedEmbeddingGradients(Model, Stage, links, _gradients));
    }

    public TrainingSpec Spec { get; }
    public DecoderModel Model { get; }
    public Device Device { get; }
    public ITokenizer Tokenizer => _corpus.Tokenizer;
    public long ParameterCount { get; }
    public int MicroBatchesPerStep => Spec.Batch.MicroBatchesPerStep;
    public long TokensPerStep => (long)Spec.Batch.Global * Spec.Model.Context;

    /// <summary>One full optimizer step (1-based) over all micro-batches on this device.</summary>
    public StepResult Step(long step)
    {
        var sum = _gradients.Rent();
        try
        {
            var lossSum = AccumulateBlock(step, 0, MicroBatchesPerStep, sum);
            return ApplyUpdate(step, sum, lossSum);
        }
        finally
        {
            _gradients.Release(sum);
        }
    }

    /// <summary>
    /// Forward and backward over micro-batches [first, first + count) of <paramref name="step"/>, their
    /// gradient sum written into <paramref name="target"/> (a flat buffer from <see cref="RentGradient"/>).
    /// Returns the sum of their losses, in the same tree order.
    /// </summary>
    public double AccumulateBlock(long step, int first, int count, Tensor target) => AccumulatePieces(step, [(first, count)], [target])[0];

    /// <summary>
    /// Forward and backward over the block of <paramref name="step"/>'s micro-batches that <paramref name="pieces"/> cover
    /// (contiguous, in order) as one schedule; each piece's gradient sum, a subtree of the canonical tree, is written into its
    /// target (a flat buffer from <see cref="RentGradient"/>). Returns each piece's sum of losses, in the same tree order.
    /// </summary>
    /// <param name="padding">Micro-batches run after the block into dropped gradients, so that this replica runs as many as the
    /// longest block (under ZeRO 3 every replica gathers each unit as often).</param>
    /// <param name="ready">Told each run (offset, length) of the flat gradient as soon as every target's sum of it is final, during
    /// the backward (<see cref="StageRunner.Run"/>); null: nobody asks.</param>
    public double[] AccumulatePieces(long step, IReadOnlyList<(int First, int Count)> pieces, IReadOnlyList<Tensor> targets, int padding = 0, Action<long, long>? ready = null)
    {
        FetchAhead(step, pieces);
        var losses = _runner.Run(step, pieces, targets, padding, ready);
        // ZeRO 3: the data-parallel group is the gradient's next; no parameter gather may still be on it.
        _gather?.Drain();
        return losses;
    }

    /// <summary>Steps whose samples a rank asks a streamed dataset for before it needs them: this one's and the next's.</summary>
    private const int DataLookaheadSteps = 2;

    /// <summary>
    /// A dataset read as samples need it: asks for the blocks of this rank's micro-batches of this step and the next ones at once
    /// (the fetches run while the step computes; a rank's block of micro-batches stays the same until the layout changes).
    /// </summary>
    private void FetchAhead(long step, IReadOnlyList<(int First, int Count)> pieces)
    {
        if (!_corpus.Streamed) return;
        var last = Math.Min(step + DataLookaheadSteps - 1, Spec.Steps);
        for (var s = step; s <= last; s++)
            foreach (var (first, count) in pieces)
                for (var micro = first; micro < first + count; micro++)
                    Prefetch(SamplesOf(s, micro).Select(_corpus.TrainSample));
    }

    private static void Prefetch(IEnumerable<(TokenDataset Data, int Window)> samples)
    {
        foreach (var (data, window) in samples) data.Prefetch(window);
    }

    /// <summary>
    /// Under expert parallelism, where the step's micro-batches come from: each source's (expert rank's) block as its pieces, and
    /// the pieces of the expert group's block whose hosted experts' sums <see cref="AccumulatePieces"/> writes, one per target.
    /// </summary>
    internal void ArrangeExperts(IReadOnlyList<IReadOnlyList<(int First, int Count)>> sources, IReadOnlyList<(int First, int Count)> group) =>
        _expertGradients?.Arrange(sources, group);

    /// <summary>With MoE layers, the expert loads of each piece of the last <see cref="AccumulatePieces"/> (vectors to all-reduce over the replicas).</summary>
    public IReadOnlyList<double[]>? PieceExpertLoads => _runner.Loads;

    /// <summary>Combines per-block gradient sums (equal, aligned blocks in micro-batch order) in place into blocks[0].</summary>
    public static Tensor CombineBlocks(IReadOnlyList<Tensor> blocks) =>
        PairwiseTree.Reduce(0, blocks.Count, i => blocks[i], (a, b) => a.add_(b, alpha: One));

    /// <summary>
    /// Averages the summed gradient over the step's micro-batches, clips it, and takes an AdamW step. Under ZeRO only this
    /// rank's part of <paramref name="gradientSum"/> need hold the sum, only that part of the parameters is updated, and the
    /// gradient norm's sums are gathered over <paramref name="replicas"/> (the caller then all-gathers the parameters).
    /// </summary>
    /// <param name="expertLoads">The step's expert loads summed over the replicas (default: this block's).</param>
    public StepResult ApplyUpdate(long step, Tensor gradientSum, double lossSum, Collectives.Communicator? replicas = null, double[]? expertLoads = null)
    {
        using var scope = NewDisposeScope();
        var m = MicroBatchesPerStep;
        // The tied embedding's two sums are added where it is updated: rank 0 of the partition (in each stage).
        if (Zero is null or { Rank: 0 }) _tied.Combine(gradientSum);
        // The stage holding the head has the loss; the others add exact zeros.
        lossSum = Stage.Ranks?.AllReduceSum(lossSum) ?? lossSum;
        // Each MoE layer is on one stage: the others add exact zeros.
        expertLoads ??= PieceExpertLoads?[0];
        if (expertLoads is not null && Stage.Ranks is { } stages) expertLoads = stages.AllReduceSum(expertLoads);
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var mean = (1.0 / m).ToScalar();
        gradientSum.mul_(mean);
        var norm = Ownership is { } ownership
            ? GradientNorm.Compute(Model, _gradients, gradientSum, Stage.Ranks, (ownership.Updates, replicas))
            : GradientNorm.Compute(Model, _gradients, gradientSum, Stage.Ranks);
        var clip = Spec.Optimizer.ClipNorm;
        if (clip > 0 && norm > clip)
        {
            using var clipFactor = (clip / (norm + 1e-6)).ToScalar();
            gradientSum.mul_(clipFactor);
        }
        var lr = _schedule.At(step);
        _optimizer.Step(lr, gradientSum);
        return new StepResult(step, lossSum / m, lr, norm, ExpertLoadVector.Summary(Spec.Model, expertLoads, m));
    }

    /// <summary>
    /// The runs of the stage's flat gradient that hold hosted experts' gradients (reduced over the expert-data group under
    /// expert parallelism), and the rest (reduced over the data-parallel group), in buffer order.
    /// </summary>
    internal (IReadOnlyList<(int Offset, int Count)> Dense, IReadOnlyList<(int Offset, int Count)> Experts) GradientRuns()
    {
        var experts = Model.ExpertKeys;
        var (dense, hosted) = (new List<(int Offset, int Count)>(), new List<(int Offset, int Count)>());
        foreach (var (name, offset, length) in _gradients.Slices)
        {
            var runs = experts.Contains(name) ? hosted : dense;
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Count == offset) runs[^1] = (runs[^1].Offset, runs[^1].Count + (int)length);
            else runs.Add(((int)offset, (int)length));
        }
        return (dense, hosted);
    }

    /// <summary>
    /// The bytes the hosted experts' gradients take: their regions of every flat gradient buffer the pools hold (all a plain
    /// reduction needs, one sum per buffer), and the per-source sums the layout-free order adds under expert parallelism.
    /// </summary>
    public (long InFlatBuffers, long PerSource) ExpertGradientBytes()
    {
        var experts = Model.ExpertKeys;
        long InPool(FlatGradients pool) => pool.Length == 0 ? 0 : pool.AllocatedBytes / pool.Length * pool.Slices.Where(s => experts.Contains(s.Name)).Sum(s => s.Length);
        return (InPool(_gradients) + _chunks.Sum(c => InPool(c.Gradients)), _expertGradients?.AllocatedBytes ?? 0);
    }

    public Tensor RentGradient() => _gradients.Rent();

    public void ReleaseGradient(Tensor buffer) => _gradients.Release(buffer);

    /// <summary>Mean loss over the first eval.batches micro-batches of the held-out split, in order, without dropout (every stage of a pipeline calls it).</summary>
    public double EvaluateHeldOut()
    {
        using var noGrad = no_grad();
        using var tf32 = EnterTf32Gate();
        Model.Training = false;
        try
        {
            var micro = Spec.Batch.Micro;
            var batches = (int)Math.Max(1, Math.Min(Spec.Eval.Batches, _corpus.HeldOutWindows / micro));
            if (_corpus.Streamed) Prefetch(Enumerable.Range(0, batches * micro).Select(w => _corpus.HeldOutSample(w)));
            var total = _runner.Evaluate(batches, i =>
            {
                var windows = Enumerable.Range(i * micro, micro).Select(w => _corpus.HeldOutSample(w)).ToArray();
                var (inputs, targets) = Batch(windows);
                // Supervised data: the mean over this micro-batch's completion targets.
                return new MicroBatch(inputs, targets, null, _corpus.Masked ? 1.0 / Math.Max(1, TrainedTargets(windows)) : null);
            });
            return (Stage.Ranks?.AllReduceSum(total) ?? total) / batches;
        }
        finally
        {
            Model.Training = true;
        }
    }

    /// <summary>Global sample indices of micro-batch <paramref name="micro"/> of step <paramref name="step"/> (1-based).</summary>
    public long[] SamplesOf(long step, int micro)
    {
        var (global, b) = (Spec.Batch.Global, Spec.Batch.Micro);
        var first = (step - 1) * global + (long)micro * b;
        return Enumerable.Range(0, b).Select(j => first + j).ToArray();
    }

    private MicroBatch MicroBatchOf(long step, int micro)
    {
        var samples = SamplesOf(step, micro);
        var (inputs, targets) = Batch(samples.Select(_corpus.TrainSample).ToArray());
        return new MicroBatch(inputs, targets, Spec.Model.Dropout > 0 ? new DropoutKeys(Spec.Seed, step, samples) : null, LossScale(step));
    }

    private (long Step, double? Scale) _lossScale = (0, null);

    /// <summary>
    /// Supervised data: each micro-batch's loss is its sum over completion targets times m / N, N the completion targets of the
    /// whole step (every sample is addressable, so every rank counts them alike, with no collective): after the engine's mean over
    /// the m micro-batches, the step's loss is the mean over its completion targets on any layout. Null for unmasked data (the mean).
    /// </summary>
    private double? LossScale(long step)
    {
        if (!_corpus.Masked) return null;
        if (_lossScale.Step == step) return _lossScale.Scale;
        var windows = Enumerable.Range(0, MicroBatchesPerStep).SelectMany(m => SamplesOf(step, m)).Select(_corpus.TrainSample).ToArray();
        var trained = TrainedTargets(windows);
        _lossScale = (step, trained == 0 ? 0 : (double)MicroBatchesPerStep / trained);
        return _lossScale.Scale;
    }

    private static long TrainedTargets((TokenDataset Data, int Window)[] windows)
    {
        long count = 0;
        foreach (var (data, window) in windows)
            foreach (var trained in data.TrainedTargets(window))
                if (trained) count++;
        return count;
    }

    /// <summary>On CUDA, holds the process's TF32 switch in this job's mode while the step's matmuls are launched.</summary>
    private IDisposable EnterTf32Gate() =>
        Device.type == DeviceType.CUDA && Model.Precision != ComputePrecision.Bf16 ? Tf32Gate.Cuda.Enter(Model.Precision == ComputePrecision.Tf32) : default(Tf32Gate.Holder);

    /// <summary>Inputs and targets [windows, context]; on supervised data a target the loss is not taken over is -1.</summary>
    private (Tensor Inputs, Tensor Targets) Batch((TokenDataset Data, int Window)[] windows)
    {
        var width = _corpus.Window;
        var ids = new long[windows.Length * width];
        for (var i = 0; i < windows.Length; i++)
        {
            var tokens = windows[i].Data.WindowTokens(windows[i].Window);
            for (var j = 0; j < width; j++) ids[i * width + j] = tokens[j];
        }
        var all = tensor(ids, [windows.Length, width], device: Device);
        if (!_corpus.Masked) return (all.narrow(1, 0, width - 1), all.narrow(1, 1, width - 1));
        var targets = new long[windows.Length * (width - 1)];
        for (var i = 0; i < windows.Length; i++)
        {
            var trained = windows[i].Data.TrainedTargets(windows[i].Window);
            for (var j = 0; j < width - 1; j++) targets[i * (width - 1) + j] = trained[j] ? ids[i * width + j + 1] : -1;
        }
        return (all.narrow(1, 0, width - 1), tensor(targets, [windows.Length, width - 1], device: Device));
    }

    public void Dispose()
    {
        foreach (var chunk in _chunks) chunk.Gradients.Dispose();
        _links?.Dispose();
        _gradients.Dispose();
        _optimizer.Dispose();
        _gather?.Dispose();
        _expertGradients?.Dispose();
        Model.Dispose();
    }
}
