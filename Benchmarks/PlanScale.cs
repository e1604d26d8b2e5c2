using System.Diagnostics;
using System.Globalization;
using Elastic.Jobs;
using Elastic.Planning;

namespace Elastic.Benchmarks;

/// <summary>
/// How long the planner takes and how much it allocates: a full search for GPT-3 175B on 1,000 and on 10,000 H100s (a new
/// planner each time, as a job's first plan), and the re-plan after one node of the 10,000 leaves (the job's planner, its
/// stage costs kept), against the 10,000-GPU full search measured in the same run. Medians of five.
/// </summary>
internal static class PlanScale
{
    private const int Runs = 5;

    public static Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var spec = SpecJson.Read(Path.Combine(BenchmarkRecord.RepositoryRoot(), "examples", "published", "gpt3-175b.json"));
        var pins = SpecLayout.Pins(spec);
        var thousand = ClusterShape.Parse("125x8:H100-80GB");
        var full = ClusterShape.Parse("1250x8:H100-80GB");
        var lessOne = ClusterShape.Parse("1249x8:H100-80GB");

        var small = Measure(() => new Planner(spec).Rank(thousand, pins));
        var cold = Measure(() => new Planner(spec).Rank(full, pins));
        var planner = new Planner(spec);
        planner.Rank(full, pins);
        var replan = Measure(() => planner.Rank(lessOne, pins));

        var rows = new[]
        {
            Row("full search, 1,000 H100 (125 x 8)", small),
            Row("full search, 10,000 H100 (1,250 x 8)", cold),
            Row("re-plan after one node of 10,000 leaves", replan),
        };
        foreach (var row in rows) Console.WriteLine(row);
        var table = string.Join("\n", [
            "| search | layouts weighed | fit in memory | chosen | time (s) | allocated (MB) |",
            "|---|---:|---:|---|---:|---:|",
            .. rows,
            "",
            string.Create(inv, $"**The full search over 10,000 GPUs takes {cold.Seconds:F2} s (goal < 10 s); the re-plan after one node leaves {replan.Seconds:F2} s (goal < 1 s), {replan.Seconds / cold.Seconds:F2}x the full search.** ")
            + string.Create(inv, $"GPT-3 175B (examples/published/gpt3-175b.json, bf16, 1,536 sequences of 2,048 per step), nothing pinned, medians of {Runs} runs on one thread. ")
            + "The planner keeps the per-shape stage costs (parameters, FLOPs, activations of each stage at each tp, pp and v) for the job's life, so a re-plan only re-ranks; "
            + string.Create(inv, $"what it keeps is the 5 best layouts and one reason per rejected family, whatever the number weighed (working set of this process after every search: {Environment.WorkingSet / 1e6:F0} MB)."),
        ]);
        BenchmarkRecord.Write("plan-scale", "The planner at 10,000 GPUs: full search and re-plan",
            "dotnet run -c Release --project Benchmarks -- plan-scale", table);
        return Task.FromResult(0);

        string Row(string what, Measured m) => string.Create(inv,
            $"| {what} | {m.Ranking.Considered:N0} | {m.Ranking.Fitting:N0} | {m.Ranking.Choice?.Layout.ToString() ?? "none"} | {m.Seconds:F2} | {m.Allocated / 1e6:F0} |");
    }

    private sealed record Measured(PlanRanking Ranking, double Seconds, long Allocated);

    private static Measured Measure(Func<PlanRanking> search)
    {
        var runs = Enumerable.Range(0, Runs).Select(_ =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var watch = Stopwatch.StartNew();
            var ranking = search();
            return new Measured(ranking, watch.Elapsed.TotalSeconds, GC.GetAllocatedBytesForCurrentThread() - before);
        }).ToList();
        return runs.OrderBy(r => r.Seconds).ElementAt(Runs / 2);
    }
}
