using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Jobs;

/// <summary>
/// Whether a layout runs a spec, and on which devices: the one rule set that spec validation, admission, `replan`, the CLI
/// and the planner all ask. Every reason a layout cannot run is given at once, each with its numbers.
/// </summary>
public static class LayoutRules
{
    /// <summary>
    /// Why <paramref name="layout"/> cannot run <paramref name="spec"/>; empty when it can. With <paramref name="largestNode"/>
    /// (the most devices one silo offers) the tensor-parallel group must fit one silo; with <paramref name="blocks"/> (the
    /// tensor-parallel groups of tp the silos can hold) every stage of every replica must get one.
    /// </summary>
    public static List<string> Problems(TrainingSpec spec, Layout layout, int? largestNode = null, long? blocks = null)
    {
        var problems = layout.Problems().ToList();
        if (problems.Count > 0) return problems;
        var (dp, pp, tp, ep) = (layout.Dp, layout.Pp, layout.Tp, layout.Ep);
        var shards = spec.Model.Shards;
        if (shards % tp != 0) problems.Add($"tp = {tp} does not divide model.tensorShards {shards}");
        if (ep > 1 && spec.Model.Moe is null) problems.Add($"ep = {ep} spreads experts, but the job's model has none (model.moe)");
        else if (spec.Model.Moe is { } moe && moe.Experts % ep != 0) problems.Add($"ep = {ep} does not divide model.moe.experts {moe.Experts}");
        if (ep > 1 && layout.Zero >= 3) problems.Add($"ep = {ep} does not run with zero = {layout.Zero} yet (zero 1 and 2 do)");
        if (largestNode is { } largest && tp > largest) problems.Add($"tp = {tp} needs {tp} devices on one silo, but the largest silo has {largest}");
        if (layout.Devices < spec.Devices.Min || layout.Devices > spec.Devices.Max)
            problems.Add($"dp x pp x tp = {dp} x {pp} x {tp} = {layout.Devices} device(s) is outside the job's devices.min..max {spec.Devices.Min}..{spec.Devices.Max}");
        if (blocks is { } free && (long)dp * pp > free)
            problems.Add($"dp x pp = {dp} x {pp} = {dp * pp} group(s) of {tp} device(s) on one silo are needed, but the silos hold {free}");
        if (layout.VirtualStages > 1 && pp == 1) problems.Add($"v = {layout.VirtualStages} interleaves pipeline stages, but pp is 1");
        var micros = spec.Batch.MicroBatchesPerStep;
        var unit = BlockUnit(spec, layout);
        if (dp > MicroBatchSplit.MostReplicas(micros, unit))
            problems.Add($"dp = {dp} is more than the {micros} micro-batches per step{(unit > 1 ? $" split in multiples of pp {unit} (interleaved)" : "")} allow (a replica would have none)");
        else
        {
            var blocksOf = (MicroBatchSplit.Shortest(micros, dp, unit), MicroBatchSplit.Longest(micros, dp, unit)) is var (a, b) && a == b ? $"{a}" : $"{a} to {b}";
            problems.AddRange(PipelineProblems(spec, layout, unit).Select(p => $"pp = {pp}: {p} (each of dp {dp} replicas runs {blocksOf} micro-batches)"));
        }
        return problems;
    }

    /// <summary>
    /// The data-parallel widths replicas shaped like <paramref name="family"/> (its pp, tp, v and schedule) may run at, narrowest
    /// first, with at most <paramref name="mostDevices"/> devices and <paramref name="groups"/> tensor-parallel groups, and at least
    /// devices.min. Replicas may hold blocks of unequal size (<see cref="MicroBatchSplit"/>), and every width that makes a step
    /// shorter than all narrower ones is offered (the narrowest for each longest block: with 8 micro-batches 1, 2, 3, 4 and 8; 5 to
    /// 7 replicas take 2 each at most, as 4 do), provided each replica's pipeline can run its block.
    /// </summary>
    public static List<int> Widths(TrainingSpec spec, Layout family, int mostDevices, long groups = long.MaxValue)
    {
        var micros = spec.Batch.MicroBatchesPerStep;
        var (pp, tp) = (family.Pp, family.Tp);
        var unit = BlockUnit(spec, family);
        var widths = new List<int>();
        for (var dp = 1; dp <= MicroBatchSplit.MostReplicas(micros, unit) && (long)dp * pp <= groups && (long)dp * pp * tp <= mostDevices; dp++)
            if ((long)dp * pp * tp >= spec.Devices.Min
                && (dp == 1 || MicroBatchSplit.Longest(micros, dp, unit) < MicroBatchSplit.Longest(micros, dp - 1, unit))
                && PipelineProblems(spec, family with { Dp = dp }, unit).Count == 0)
                widths.Add(dp);
        return widths;
    }

    /// <summary>
    /// The device counts (dp x pp x tp) some layout of the spec runs on, widest first: at its pinned pp and tp, or at every pp up to
    /// model.layers and every tp a power of two dividing model.tensorShards (what a job accepts while the planner chooses).
    /// </summary>
    public static IReadOnlyList<int> DeviceCounts(TrainingSpec spec)
    {
        var tensors = spec.Parallel.Tensor is { } tp ? [tp] : Enumerable.Range(0, 31).Select(i => 1 << i).TakeWhile(t => t <= spec.Model.Shards).ToList();
        var pipelines = spec.Parallel.Pipeline is { } pp ? [pp] : Enumerable.Range(1, Math.Max(1, spec.Model.Layers)).ToList();
        return tensors.SelectMany(t => pipelines.SelectMany(p => SpecValidator.DataParallelWidths(spec, t, p).Select(dp => dp * p * t)))
            .Distinct().OrderDescending().ToList();
    }

    /// <summary>What a replica's block of micro-batches is a whole multiple of on <paramref name="layout"/> (<see cref="MicroBatchSplit.Unit"/>).</summary>
    public static int BlockUnit(TrainingSpec spec, Layout layout) =>
        MicroBatchSplit.Unit(spec.Batch.MicroBatchesPerStep, layout.Pp, layout.Schedule == PipelineSchedule.Interleaved);

    /// <summary>Why the pipeline of each of the layout's replicas (at most the units) cannot run its block, each with its numbers; empty when it can.</summary>
    public static List<string> PipelineProblems(TrainingSpec spec, Layout layout, int unit)
    {
        if (layout.Pp == 1) return [];
        var micros = spec.Batch.MicroBatchesPerStep;
        var (shortest, longest) = (MicroBatchSplit.Shortest(micros, layout.Dp, unit), MicroBatchSplit.Longest(micros, layout.Dp, unit));
        return new[] { longest, shortest }.Distinct()
            .SelectMany(block => PipelineSchedule.Problems(layout.Schedule, layout.Pp, block, layout.VirtualStages, spec.Model.Layers))
            .Distinct().ToList();
    }
}
