namespace Elastic.Parallelism.Pipeline;

public enum PipelineOpKind { Forward, Backward }

/// <summary>One unit of a stage's work: the forward or backward of micro-batch <see cref="Micro"/> through model chunk <see cref="Chunk"/>.</summary>
public readonly record struct PipelineOp(PipelineOpKind Kind, int Micro, int Chunk)
{
    public override string ToString() => $"{(Kind == PipelineOpKind.Forward ? "F" : "B")}{Micro}.{Chunk}";
}

/// <summary>
/// The order in which one pipeline stage runs its forwards and backwards in a step. Every stage runs the same function
/// of (stages, its rank, micro-batches, virtual stages); model chunk c lives on stage c mod p, so with v virtual stages
/// stage r holds chunks r, r + p, ..., r + (v - 1) p.
/// </summary>
public static class PipelineSchedule
{
    public const string OneFOneB = "1f1b";
    public const string Interleaved = "interleaved";

    /// <summary>Why (p, m, v) cannot run under <paramref name="schedule"/>, each with its numbers; empty when it can.</summary>
    public static List<string> Problems(string schedule, int stages, int micros, int virtualStages, int layers)
    {
        var problems = new List<string>();
        if (schedule is not (OneFOneB or Interleaved)) problems.Add($"schedule '{schedule}' is not '{OneFOneB}' or '{Interleaved}'");
        if (stages < 1) problems.Add($"pipeline {stages} must be at least 1");
        if (virtualStages < 1) problems.Add($"virtualStages {virtualStages} must be at least 1");
        if (problems.Count > 0) return problems;
        if (schedule == OneFOneB && virtualStages != 1)
            problems.Add($"virtualStages {virtualStages} needs the '{Interleaved}' schedule ('{OneFOneB}' runs one chunk per stage)");
        if (schedule == Interleaved && micros % stages != 0)
            problems.Add($"the interleaved schedule needs the micro-batches per step ({micros}) to be a multiple of pipeline {stages}");
        if (stages * virtualStages > layers)
            problems.Add($"pipeline {stages} x virtualStages {virtualStages} = {stages * virtualStages} chunks need one layer each, but model.layers is {layers}");
        return problems;
    }

    /// <summary>Stage <paramref name="rank"/>'s ops for one step of <paramref name="micros"/> micro-batches.</summary>
    public static IReadOnlyList<PipelineOp> For(string schedule, int stages, int rank, int micros, int virtualStages = 1)
    {
        if (Problems(schedule, stages, micros, virtualStages, stages * virtualStages) is { Count: > 0 } problems)
            throw new ArgumentException(string.Join("; ", problems));
        if (rank < 0 || rank >= stages) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"not a stage of a pipeline of {stages}");
        return schedule == OneFOneB ? OneForwardOneBackward(stages, rank, micros) : InterleavedOneForwardOneBackward(stages, rank, micros, virtualStages);
    }

    /// <summary>
    /// 1F1B (Narayanan et al. 2021): min(p - r - 1, m) forwards to fill the pipeline, then one forward and one backward
    /// in turn, then the remaining backwards; at most p - r micro-batches' activations are held at once.
    /// </summary>
    private static List<PipelineOp> OneForwardOneBackward(int stages, int rank, int micros)
    {
        var warmup = Math.Min(stages - rank - 1, micros);
        var ops = new List<PipelineOp>(2 * micros);
        for (var i = 0; i < warmup; i++) ops.Add(new(PipelineOpKind.Forward, i, rank));
        for (var i = 0; i < micros - warmup; i++)
        {
            ops.Add(new(PipelineOpKind.Forward, warmup + i, rank));
            ops.Add(new(PipelineOpKind.Backward, i, rank));
        }
        for (var i = micros - warmup; i < micros; i++) ops.Add(new(PipelineOpKind.Backward, i, rank));
        return ops;
    }

    /// <summary>
    /// Interleaved 1F1B (Narayanan et al. 2021, section 2.2): each stage runs its v chunks in turn on groups of p
    /// micro-batches (the k-th forward is chunk (k / p) mod v of micro-batch (k / pv) p + k mod p; backwards run the chunks
    /// in reverse), after (p - r - 1) * 2 + (v - 1) p warm-up forwards; the bubble shrinks by v.
    /// </summary>
    private static List<PipelineOp> InterleavedOneForwardOneBackward(int stages, int rank, int micros, int virtualStages)
    {
        var total = micros * virtualStages;
        var warmup = micros == stages ? total : Math.Min(total, (stages - rank - 1) * 2 + (virtualStages - 1) * stages);
        PipelineOp Nth(PipelineOpKind kind, int k)
        {
            var local = k / stages % virtualStages;
            if (kind == PipelineOpKind.Backward) local = virtualStages - 1 - local;
            return new(kind, k / (stages * virtualStages) * stages + k % stages, local * stages + rank);
        }
        var ops = new List<PipelineOp>(2 * total);
        for (var k = 0; k < warmup; k++) ops.Add(Nth(PipelineOpKind.Forward, k));
        for (var i = 0; i < total - warmup; i++)
        {
            ops.Add(Nth(PipelineOpKind.Forward, warmup + i));
            ops.Add(Nth(PipelineOpKind.Backward, i));
        }
        for (var k = total - warmup; k < total; k++) ops.Add(Nth(PipelineOpKind.Backward, k));
        return ops;
    }
}
