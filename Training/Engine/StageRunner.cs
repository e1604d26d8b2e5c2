using Elastic.Parallelism.Pipeline;
using Elastic.Training.Model;
using Elastic.Training.Parallel.Pipeline;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>One micro-batch as a stage needs it: token ids and targets [batch, time], and its dropout keys.</summary>
internal readonly record struct MicroBatch(Tensor Inputs, Tensor Targets, DropoutKeys? Keys);

/// <summary>
/// Runs one step's forwards and backwards of a pipeline stage over a block of micro-batches, in the order of
/// <see cref="PipelineSchedule"/>, on the device thread: activations in from the previous chunk's stage and out to the
/// next, gradients the other way. Each chunk's micro-batch gradients are summed in the canonical tree as their
/// backwards finish (in micro-batch order on every schedule), so a stage ends with the bits one device has for the
/// same parameters. A single stage holding the whole model is the same loop without links.
/// </summary>
/// <param name="experts">Under expert parallelism, where hosted experts' gradients are summed per source (null otherwise).</param>
internal sealed class StageRunner(GptModel model, PipelineStage stage, StageLinks? links, IReadOnlyList<ChunkGradients> chunks, long sequenceLength,
    Func<long, int, MicroBatch> batch, Func<IDisposable> computeMode, Parallel.Experts.ExpertGradients? experts)
{
    private readonly StageLinks? _links = links;

    /// <summary>With MoE layers, the expert loads of the last <see cref="Run"/>'s micro-batches summed in the canonical tree (<see cref="Parallel.Experts.ExpertLoadVector"/>).</summary>
    public double[]? Loads { get; private set; }

    /// <summary>Called after each op with its compute span (Stopwatch timestamps, waits for the peer's frame excluded): benchmarks measure the bubble with it.</summary>
    public Action<PipelineOp, long, long>? Observer { get; set; }

    /// <summary>
    /// Micro-batches [first, first + count) of <paramref name="step"/>: each local chunk's gradient sum is written into its
    /// region of <paramref name="target"/>. Returns the tree sum of their losses on the stage holding the head, 0 elsewhere.
    /// </summary>
    public double Run(long step, int first, int count, Tensor target)
    {
        using var scope = NewDisposeScope();
        var ops = PipelineSchedule.For(stage.Schedule, stage.Stages, stage.Rank, count, stage.VirtualStages);
        var sums = chunks.Select(c => new TreeAccumulator<Tensor>(0, count, (into, other) => into.add_(other, alpha: One), c.Gradients.Release)).ToList();
        var inFlight = new Dictionary<(int Micro, int Chunk), Held>();
        var losses = new Tensor[count];
        var loads = model.Spec.Moe is null ? null : new double[count][];
        experts?.Begin(count);
        try
        {
            foreach (var op in ops)
            {
                var local = chunks.Select((c, i) => (c, i)).Single(c => c.c.Chunk.Index == op.Chunk).i;
                long started;
                if (op.Kind == PipelineOpKind.Forward)
                {
                    (inFlight[(op.Micro, op.Chunk)], started) = Forward(chunks[local].Chunk, batch(step, first + op.Micro), losses, op.Micro);
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
                    var sum = sums[local];
                    var buffer = sum.Next == 0 ? target.narrow(0, chunks[local].Offset, chunks[local].Gradients.Length) : chunks[local].Gradients.Rent();
                    started = Backward(chunks[local], held, buffer);
                    sum.Add(op.Micro, buffer);
                    experts?.Complete(chunks[local].Chunk, op.Micro);
                }
                Observer?.Invoke(op, started, System.Diagnostics.Stopwatch.GetTimestamp());
            }
            _links?.Flush();
            if (sums.FirstOrDefault(s => !s.Complete) is { } unfinished)
                throw new InvalidOperationException($"the {stage.Schedule} schedule of stage {stage.Rank} left a chunk with micro-batch {unfinished.Next} of {count} without a backward");
            experts?.WriteInto(target, (chunk, key) =>
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
        Loads = loads is null ? null : PairwiseTree.Reduce(0, count, i => loads[i], Parallel.Experts.ExpertLoadVector.Add);
        if (!model.Chunks.Any(c => c.Head)) return 0;
        // One host synchronisation per block: the losses stay on the device (fp64) until their tree sum is read.
        return PairwiseTree.Reduce(0, count, i => losses[i], (a, b) => a.add(b, alpha: One)).item<double>();
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
                var output = model.Forward(chunk, received ?? micro.Inputs, sequenceLength, chunk.Head ? micro.Targets : null, keys: null);
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
        var output = model.Forward(chunk, input ?? micro.Inputs, sequenceLength, chunk.Head ? micro.Targets : null, micro.Keys);
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
