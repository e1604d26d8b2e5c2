using System.Globalization;

namespace Elastic.Benchmarks;

/// <summary>
/// How the ratio against checkpoint-restart follows the churn: the synthetic trace replayed at k times its churn (removals k
/// times as often and nodes back k times sooner, so as many nodes are alive on average), each three ways at the same
/// checkpoint cadence. Next to the measured baseline stands what the simple model predicts for it,
/// 1 - changes x (half the checkpoint interval + the measured restart) / duration, so the crossover can be read off.
/// </summary>
internal static class ChurnSweep
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static async Task<int> Run(ReplayOptions options, IReadOnlyList<double> churns, TimeSpan notice)
    {
        var rows = new List<string>();
        foreach (var cadence in options.CheckpointMinutes)
        {
            foreach (var churn in churns)
            {
                var full = SpotTraceReplay.SyntheticTrace(churn).Mapped(1, 8);
                var trace = double.IsPositiveInfinity(options.Hours) ? full : full.Until(TimeSpan.FromHours(options.Hours));
                Console.WriteLine(string.Create(Inv, $"synthetic x{churn} churn: {trace.Duration.TotalHours:F1} h, {trace.Removals} removals, {trace.Additions} additions, {trace.Changes} changes; a checkpoint every {cadence} min; x{options.Scale:F0}"));
                var results = new List<SpotTraceReplay.Result>();
                foreach (var mode in options.Modes)
                {
                    var result = await SpotTraceReplay.Replay(trace, options.Scale, notice, cadence, mode);
                    Console.WriteLine(result.Line());
                    results.Add(result);
                }
                if (results.Count == 3) rows.Add(Row(trace, options.Scale, cadence, churn, results));
            }
        }
        if (rows.Count != churns.Count * options.CheckpointMinutes.Count || !double.IsPositiveInfinity(options.Hours)) return 0;
        var table = string.Join("\n", [
            "| churn | removals / additions | nodes alive, mean | the job's nodes change | checkpoint every | ETTR elastic, notice | ETTR elastic, kills | ETTR checkpoint-restart | model's checkpoint-restart | ratio, notice / kills | steps lost: elastic / restart |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            .. rows,
            "",
            "The synthetic trace of the spot-trace replay section (seed 16, 8 nodes, 4 h), with removals k times as often and nodes back k times sooner (at x1 a removal every 6 min and back after 15 min on average), so that about as many nodes are alive at every churn; the same job, modes and checkpoint cadence as there. " +
            "The model's checkpoint-restart ETTR is 1 - changes x (half the checkpoint interval + its median measured restart, in trace time) / duration: the baseline loses on average half an interval of work and a restart at every change of its nodes, whatever the rest of the system does. " +
            "The elastic job loses committed steps only when no replica survives a change (it ran on one node and that node was killed): it then goes back to its checkpoint, as the baseline does at every change.",
        ]);
        Console.WriteLine(table);
        BenchmarkRecord.Write("spot-churn", "Spot trace replay: the ratio against checkpoint-restart as churn grows",
            $"dotnet run -c Release --project Benchmarks -- spot-trace {options.Command}", table);
        return 0;
    }

    private static string Row(Trace trace, double scale, double cadence, double churn, List<SpotTraceReplay.Result> results)
    {
        var (notice, kills, baseline) = (Of(SpotTraceReplay.Mode.ElasticWithNotice), Of(SpotTraceReplay.Mode.ElasticNoNotice), Of(SpotTraceReplay.Mode.CheckpointRestart));
        var restartMinutes = baseline.Pauses.Count == 0 ? 0 : Statistics.Median(baseline.Pauses) * scale / 60;
        var model = Math.Max(0, 1 - trace.Changes * (cadence / 2 + restartMinutes) / trace.Duration.TotalMinutes);
        return string.Create(Inv,
            $"| x{churn} | {trace.Removals} / {trace.Additions} | {trace.MeanAlive():F2} | {trace.Changes} times, every {trace.Duration.TotalMinutes / trace.Changes:F1} min | {cadence} min | {notice.Ettr:F2} | {kills.Ettr:F2} | {baseline.Ettr:F2} | {model:F2} | **{notice.Ettr / baseline.Ettr:F1}x / {kills.Ettr / baseline.Ettr:F1}x** | {notice.Lost + kills.Lost} / {baseline.Lost} |");

        SpotTraceReplay.Result Of(SpotTraceReplay.Mode mode) => results.Single(r => r.Mode == mode);
    }
}
