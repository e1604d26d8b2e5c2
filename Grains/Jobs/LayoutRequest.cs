using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A layout asked for a running job (`elastic replan JOB --plan dp=1,pp=2,tp=2,zero=1`): checked against the job's spec and the
/// cluster before anything changes, every reason it cannot run given at once with its numbers.
/// </summary>
public static class LayoutRequest
{
    /// <summary>Parses and checks <paramref name="plan"/>; throws <see cref="ArgumentException"/> naming every problem.</summary>
    /// <param name="largestSilo">The most devices any one silo has (a tensor-parallel group lives on one silo).</param>
    public static ParallelLayout Check(string plan, TrainingSpec spec, int largestSilo)
    {
        ParallelLayout layout;
        try
        {
            layout = ParallelLayout.Parse(plan);
        }
        catch (ParallelGridException e)
        {
            throw new ArgumentException($"--plan: {e.Message}");
        }
        var problems = Problems(layout.Grid, spec, largestSilo);
        if (layout.Zero is { } zero && (zero < 0 || zero > SpecValidator.MaxZero)) problems.Add(ZeroProblem(zero));
        if (layout.Grid.Ep > 1 && (layout.Zero ?? spec.Parallel.Zero) >= 3)
            problems.Add($"ep = {layout.Grid.Ep} does not run with zero = {layout.Zero ?? spec.Parallel.Zero} yet (zero 1 and 2 do)");
        return problems.Count == 0 ? layout : throw new ArgumentException($"--plan {plan}: {string.Join("; ", problems)}; nothing changed");
    }

    /// <summary>Why a ZeRO stage cannot be run.</summary>
    public static string ZeroProblem(int zero) => $"zero = {zero} is not a ZeRO stage this engine runs (0 to {SpecValidator.MaxZero})";

    public static List<string> Problems(ParallelGrid grid, TrainingSpec spec, int largestSilo)
    {
        var problems = new List<string>();
        var shards = spec.Model.Shards;
        var micros = spec.Batch.MicroBatchesPerStep;
        if (shards % grid.Tp != 0) problems.Add($"tp = {grid.Tp} does not divide model.tensorShards {shards}");
        if (grid.Ep > 1 && spec.Model.Moe is null) problems.Add($"ep = {grid.Ep} spreads experts, but the job's model has none (model.moe)");
        else if (spec.Model.Moe is { } moe && moe.Experts % grid.Ep != 0) problems.Add($"ep = {grid.Ep} does not divide model.moe.experts {moe.Experts}");
        if (grid.Tp > largestSilo) problems.Add($"tp = {grid.Tp} needs {grid.Tp} devices on one silo, but the largest silo has {largestSilo}");
        if (grid.Size < spec.Devices.Min || grid.Size > spec.Devices.Max)
            problems.Add($"dp x pp x tp = {grid.Dp} x {grid.Pp} x {grid.Tp} = {grid.Size} device(s) is outside the job's devices.min..max {spec.Devices.Min}..{spec.Devices.Max}");
        var unit = SpecValidator.BlockUnit(spec, grid.Pp);
        if (grid.Dp > MicroBatchSplit.MostReplicas(micros, unit))
            problems.Add($"dp = {grid.Dp} is more than the {micros} micro-batches per step{(unit > 1 ? $" split in multiples of pp {unit} (interleaved)" : "")} allow (a replica would have none)");
        else problems.AddRange(PipelineProblems());
        IEnumerable<string> PipelineProblems() => SpecValidator.PipelineProblems(spec, grid.Pp, grid.Dp, unit)
            .Select(p => $"pp = {grid.Pp}: {p} (each of dp {grid.Dp} replicas runs {Blocks()} micro-batches)");
        string Blocks() => (MicroBatchSplit.Shortest(micros, grid.Dp, unit), MicroBatchSplit.Longest(micros, grid.Dp, unit)) is var (a, b) && a == b ? $"{a}" : $"{a} to {b}";
        return problems;
    }
}
