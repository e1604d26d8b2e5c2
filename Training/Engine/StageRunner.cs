using Elastic.Parallelism.Pipeline;
using Elastic.Training.Model;
using Elastic.Training.Parallel.Pipeline;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>One micro-batch as a stage needs it: token ids and targets [batch, time], and its dropout keys.</summary>
/// <param name="LossScale">Null: the loss is the mean over every target; else the sum over targets that are not -1 (supervised data), times it.</param>
internal readonly record struct MicroBatch(Tensor Inputs, Tensor Targets, DropoutKeys? Keys, double? LossScale = null);

/// <summary>
/// Runs one step's forwards and backwards of a pipeline stage over a block of micro-batches, in the order of
/// <see cref="PipelineSchedule"/>, on the device thread: activations in from the previous chunk's stage and out to the
/// next, gradients the other way. Each chunk's micro-batch gradients are summed in the canonical tree as their
/// backwards finish (in micro-batch order on every schedule), so a stage ends with the bits one device has for the
/// same parameters. A single stage holding the whole model is the same loop without links.
/// </summary>
/// <param name="experts">Under expert parallelism, where hosted experts' gradients are summed per source (null otherwise).</param>
internal sealed class StageRunner(DecoderModel model, PipelineStage stage, StageLinks? links, IReadOnlyList<ChunkGradients> chunks, long sequenceLength,
    Func<long, int, MicroBatch> batch, Func<IDisposable> computeMode, Parallel.Experts.ExpertGradients? experts)
{
    private readonly StageLinks? _links = links;

    /// <summary>With MoE layers, the expert loads of each piece of the last <see cref="Run"/> summed in the canonical tree (<see cref="Parallel.Experts.ExpertLoadVector"/>).</summary>
    public IReadOnlyList<double[]>? Loads { get; private set; }

    /// <summary>Called after each op with its compute span (Stopwatch timestamps, waits for the peer's frame excluded): benchmarks measure the bubble with it.</summary>
    public Action<PipelineOp, long, long>? Observer { get; set; }

    /// <summary>
    /// The block of micro-batches <paramref name="pieces"/> cover (contiguous, in order) of <paramref name="step"/>, run as one
    /// schedule: each piece's gradient sum (a subtree of the canonical tree) is written into each local chunk's region of its
    /// target (under expert parallelism the hosted experts' sums over the expert group's block go to its pieces' targets, which
    /// may be more). Returns each piece's tree sum of losses on the stage holding the head, 0 elsewhere.
    /// </summary>
    /// <param name="padding">Micro-batches run after the block, into gradients that are dropped, so that this replica runs as
    /// many as the longest block (collectives inside a step, ZeRO 3's gathers, pair up by order).</param>
    /// <param name="ready">Told each run (offset, length) of the stage's flat gradient as soon as every target's sum of it is
    /// final: during each chunk's last backward of the block, a unit at a time as its backward finishes, and the chunk's rest
    /// once that backward returns; every run once, in the same order on every replica (null: nobody asks).</param>
    public double[] Run(long step, IReadOnlyList<(int First, int Count)> pieces, IReadOnlyList<Tensor> targets, int padding = 0, Action<long, long>? ready = null)
    {
        var (first, count, pieceOf) = Block(pieces, targets.Count);
        if (ready is not null && padding > 0) throw new ArgumentException("gradients handed over during the backward take a block without padding", nameof(padding));
        // A padding micro-batch is one of the block's own again (any would do: its results are dropped).
        int Data(int micro) => first + micro % count;
        using var scope = NewDisposeScope();
        var ops = PipelineSchedule.For(stage.Schedule, stage.Stages, stage.Rank, count + padding, stage.VirtualStages);
        // Per chunk, one tree per piece over the piece's micro-batches (indices relative to the block).
        var sums = chunks.Select(c => pieces.Select(p => new TreeAccumulator<Tensor>(p.First - first, p.First - first + p.Count, (into, other) => into.add_(other, alpha: One), c.Gradients.Release)).ToList()).ToList();
        var inFlight = new Dictionary<(int Micro, int Chunk), Held>();
        var losses = new Tensor[count + padding];
        var loads = model.Spec.Moe is null ? null : new double[count + padding][];
        experts?.Begin(count + padding);
        try
        {
            foreach (var op in ops)
            {
                var local = chunks.Select((c, i) => (c, i)).Single(c => c.c.Chunk.Index == op.Chunk).i;
                long started;
                if (op.Kind == PipelineOpKind.Forward)
                {
                    // The block's last micro-batch marks its units, so that its backward says when each unit's gradients are final.
                    model.UnitDone = ready is not null && op.Micro == count - 1 ? OnUnitDone : null;
                    try
                    {
                        (inFlight[(op.Micro, op.Chunk)], started) = Forward(chunks[local].Chunk, batch(step, Data(op.Micro)), losses, op.Micro);
                    }
                    finally
                    {
                        model.UnitDone = null;
                    }
                    if (loads is not null)
                    {
                        var vector = Parallel.Experts.ExpertLoadVector.Of(model.Spec, model.TakeExpertLoads());
                        loads[op.Micro] = loads[op.Micro] is { } earlier ? Parallel.Experts.ExpertLoadVector.Add(earlier, vector) : vector;
                    }
                }
                else
                {
                    var held = inFlight[(op.Micro, op.Chunk)];
                    inFlight.Remove((op.Micro, op.Chunk));
                    if (op.Micro < count)
                    {
                        var piece = pieceOf[op.Micro];
                        var sum = sums[local][piece];
                        var buffer = sum.Next == pieces[piece].First - first
                            ? targets[piece].narrow(0, chunks[local].Offset, chunks[local].Gradients.Length)
                            : chunks[local].Gradients.Rent();
                        if (ready is not null && op.Micro == count - 1)
                        {
                            started = LastBackward(chunks[local], held, buffer, sum.AddsFor(op.Micro, buffer), ready);
                            sum.Add(op.Micro, buffer, added: true);
                        }
                        else
                        {
                            started = Backward(chunks[local], held, buffer);
                            sum.Add(op.Micro, buffer);
                        }
                    }
                    else
                    {
                        var dropped = chunks[local].Gradients.Rent();
                        started = Backward(chunks[local], held, dropped);
                        chunks[local].Gradients.Release(dropped);
                    }
                    experts?.Complete(chunks[local].Chunk, op.Micro);
                }
                Observer?.Invoke(op, started, System.Diagnostics.Stopwatch.GetTimestamp());
            }
            _links?.Flush();
            if (sums.SelectMany(s => s).FirstOrDefault(s => !s.Complete) is { } unfinished)
                throw new InvalidOperationException($"the {stage.Schedule} schedule of stage {stage.Rank} left a chunk with micro-batch {unfinished.Next} of {count} without a backward");
            experts?.WriteInto(targets, (chunk, key) =>
            {
                var region = chunks.Single(c => c.Chunk.Index == chunk.Index);
                var slice = region.Gradients.SliceOf(key);
                return (region.Offset + slice.Offset, slice.Length);
            });
        }
        finally
        {
            foreach (var held in inFlight.Values) Free(held);
        }
        (int Lo, int Hi) Range((int First, int Count) p) => (p.First - first, p.First - first + p.Count);
        Loads = loads is null ? null : pieces.Select(p => PairwiseTree.Reduce(Range(p).Lo, Range(p).Hi, i => loads[i], Parallel.Experts.ExpertLoadVector.Add)).ToList();
        if (!model.Chunks.Any(c => c.Head)) return new double[pieces.Count];
        // One host synchronisation per block: the losses stay on the device (fp64) until their tree sums are read.
        using var pieceLosses = stack(pieces.Select(p => PairwiseTree.Reduce(Range(p).Lo, Range(p).Hi, i => losses[i], (a, b) => a.add(b, alpha: One))).ToArray());
        return pieceLosses.cpu().data<double>().ToArray();
    }

    /// <summary>The block the pieces cover, and the piece of each of its micro-batches; throws unless they are contiguous and in order.</summary>
    private static (int First, int Count, int[] PieceOf) Block(IReadOnlyList<(int First, int Count)> pieces, int targets)
    {
        if (pieces.Count == 0 || pieces.Count > targets)
            throw new ArgumentException($"{pieces.Count} piece(s) with {targets} gradient target(s): a target per piece (hosted experts may write more), at least one", nameof(pieces));
        var first = pieces[0].First;
        var pieceOf = new List<int>();
        for (var k = 0; k < pieces.Count; k++)
        {
            if (pieces[k].Count < 1 || pieces[k].First != first + pieceOf.Count)
                throw new ArgumentException($"piece {k} [{pieces[k].First}, +{pieces[k].Count}) does not follow micro-batch {first + pieceOf.Count - 1}: a block's pieces are contiguous and in order", nameof(pieces));
            pieceOf.AddRange(Enumerable.Repeat(k, pieces[k].Count));
        }
        return (first, pieceOf.Count, [.. pieceOf]);
    }

    /// <summary>
    /// The sum of the losses of <paramref name="batches"/> evaluation micro-batches, in order, forward only (no dropout:
    /// the model is in evaluation mode): each stage runs its chunks in chunk order per micro-batch. 0 on stages without the head.
    /// </summary>
    public double Evaluate(int batches, Func<int, MicroBatch> evaluationBatch)
    {
        using var scope = NewDisposeScope();
        var total = zeros(1, dtype: ScalarType.Float64, device: model.Device);
        for (var i = 0; i < batches; i++)
        {
            var micro = evaluationBatch(i);
            foreach (var chunk in stage.Local)
            {
                using var step = NewDisposeScope();
                var received = chunk.Embedding ? null : Receive(Previous(chunk), micro);
                var output = model.Forward(chunk, received ?? micro.Inputs, sequenceLength, chunk.Head ? micro.Targets : null, keys: null, micro.LossScale);
                if (received is not null) _links!.Release(received);
                if (chunk.Head) total.add_(output.to(ScalarType.Float64), alpha: One);
                else _links!.Send(Next(chunk), output);
            }
        }
        _links?.Flush();
        return model.Chunks.Any(c => c.Head) ? total.item<double>() : 0;
    }

    /// <returns>What the backward needs, and when the compute started (after the input arrived).</returns>
    private (Held, long Started) Forward(ModelChunk chunk, MicroBatch micro, Tensor[] losses, int index)
    {
        using var scope = NewDisposeScope();
        using var mode = computeMode();
        var received = chunk.Embedding ? null : Receive(Previous(chunk), micro);
        // The leaf is a view: the received tensor goes back to the links' pool after the backward.
        var input = received?.detach().requires_grad_(true);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var output = model.Forward(chunk, input ?? micro.Inputs, sequenceLength, chunk.Head ? micro.Targets : null, micro.Keys, micro.LossScale);
        if (chunk.Head) losses[index] = output.detach().to(ScalarType.Float64).MoveToOuterDisposeScope();
        else _links!.Send(Next(chunk), output);
        return (new Held(received, input?.DetachFromDisposeScope(), output.DetachFromDisposeScope()), started);
    }

    /// <returns>When the compute started (after the output's gradient arrived).</returns>
    private long Backward(ChunkGradients chunk, Held held, Tensor buffer)
    {
        using var scope = NewDisposeScope();
        using var mode = computeMode();
        try
        {
            var gradient = chunk.Chunk.Head ? null : _links!.ReceiveLeased(Next(chunk.Chunk), held.Output.shape);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            buffer.zero_();
            chunk.Gradients.BindTo(buffer);
            if (gradient is null) held.Output.backward();
            else
            {
                held.Output.backward([gradient]);
                _links!.Release(gradient);
            }
            model.Group.ThrowIfFailed();
            if (held.Input is { } input) _links!.Send(Previous(chunk.Chunk), input.grad ?? throw new InvalidOperationException($"chunk {chunk.Chunk} got no gradient for its input"));
            return started;
        }
        finally
        {
            Free(held);
        }
    }

    /// <summary>
    /// A chunk's last backward of the block, whose runs are handed to <paramref name="ready"/> as they become final: a unit's as
    /// its backward finishes (<see cref="OnUnitDone"/>), the rest after. A run's tree adds (<paramref name="adds"/>, the last
    /// micro-batch's sum into its left siblings) are made before it is handed, the same adds the whole buffer would get.
    /// </summary>
    private long LastBackward(ChunkGradients chunk, Held held, Tensor buffer, IReadOnlyList<(Tensor Into, Tensor From)> adds, Action<long, long> ready)
    {
        var armed = new ArmedChunk(chunk, adds, ready);
        _armed = armed;
        try
        {
            var started = Backward(chunk, held, buffer);
            if (armed.Error is { } error) throw new InvalidOperationException($"handing chunk {chunk.Chunk}'s gradients over during its backward failed: {error.Message}", error);
            armed.Hand(chunk.Gradients.Slices.Select(s => (s.Offset, s.Length)));
            return started;
        }
        finally
        {
            _armed = null;
        }
    }

    private ArmedChunk? _armed;

    /// <summary>Called by autograd (a marked unit's backward is done): hands the unit's runs of the armed chunk over.</summary>
    private void OnUnitDone(string unit)
    {
        if (_armed is not { } armed) return;
        try
        {
            armed.Hand(armed.Chunk.Gradients.Slices.Where(s => DecoderModel.Completes(unit, s.Name)).Select(s => (s.Offset, s.Length)));
        }
        catch (Exception e)
        {
            armed.Error ??= e;
        }
    }

    /// <summary>A chunk in its last backward of the block: the adds each run gets before it is handed over, and the runs handed so far.</summary>
    private sealed class ArmedChunk(ChunkGradients chunk, IReadOnlyList<(Tensor Into, Tensor From)> adds, Action<long, long> ready)
    {
        private readonly HashSet<long> _handed = [];

        public ChunkGradients Chunk { get; } = chunk;

        public Exception? Error { get; set; }

        /// <summary>Makes the tree adds over the slices not handed yet and hands them over, coalesced into runs, in buffer order.</summary>
        public void Hand(IEnumerable<(long Offset, long Length)> slices)
        {
            using var scope = NewDisposeScope();
            foreach (var (offset, length) in Coalesce(slices.Where(s => _handed.Add(s.Offset)).OrderBy(s => s.Offset)))
            {
                foreach (var (into, from) in adds) into.narrow(0, offset, length).add_(from.narrow(0, offset, length), alpha: One);
                ready(Chunk.Offset + offset, length);
            }
        }

        private static IEnumerable<(long Offset, long Length)> Coalesce(IEnumerable<(long Offset, long Length)> slices)
        {
            (long Offset, long Length)? run = null;
            foreach (var (offset, length) in slices)
            {
                if (run is { } r && r.Offset + r.Length == offset) run = (r.Offset, r.Length + length);
                else
                {
                    if (run is { } done) yield return done;
                    run = (offset, length);
                }
            }
            if (run is { } last) yield return last;
        }
    }

    private void Free(Held held)
    {
        held.Input?.Dispose();
        held.Output.Dispose();
        if (held.Received is not null) _links!.Release(held.Received);
    }

    private Tensor Receive(int fromStage, MicroBatch micro) => _links!.ReceiveLeased(fromStage, model.BoundaryShape(sequenceLength, micro.Inputs.shape[0]));

    /// <summary>A forward's tensors kept for its backward: the frame received from the previous stage, the input leaf over it, the output.</summary>
    private sealed record Held(Tensor? Received, Tensor? Input, Tensor Output);

    private int Next(ModelChunk chunk) => (stage.StageOf(chunk) + 1) % stage.Stages;

    private int Previous(ModelChunk chunk) => (stage.StageOf(chunk) + stage.Stages - 1) % stage.Stages;
}

/// <summary>One local chunk's gradients: a pool of chunk-sized flat buffers and where the chunk's region starts in the stage's buffer.</summary>
internal sealed record ChunkGradients(ModelChunk Chunk, FlatGradients Gradients, long Offset);
