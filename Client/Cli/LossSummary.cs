using System.Globalization;
using Elastic.Jobs.Reports;

namespace Elastic.Cli;

/// <summary>The loss curve of a run in a few lines: a sparkline, the start, end and best values, held-out losses.</summary>
internal static class LossSummary
{
    private const string Bars = "▁▂▃▄▅▆▇█";

    public static void Print(CliOutput console, RunReport report, int width = 60)
    {
        var steps = report.Steps;
        if (steps.Count == 0) return;
        var n = Math.Min(width, steps.Count);
        var buckets = Enumerable.Range(0, n).Select(i =>
        {
            var (from, to) = (i * steps.Count / n, (i + 1) * steps.Count / n);
            return steps.Skip(from).Take(to - from).Average(s => s.Loss);
        }).ToArray();
        var (lo, hi) = (buckets.Min(), buckets.Max());
        var line = new string(buckets.Select(v => Bars[hi > lo ? (int)Math.Round((v - lo) / (hi - lo) * (Bars.Length - 1)) : 0]).ToArray());
        var best = steps.MinBy(s => s.Loss)!;
        var inv = CultureInfo.InvariantCulture;
        console.Plain.WriteLine();
        console.Plain.WriteLine(string.Create(inv, $"loss  {line}  {steps[0].Loss:F3} -> {steps[^1].Loss:F3} (best {best.Loss:F3} at step {best.Step})"));
        if (report.HeldOut.Count > 0)
            console.Plain.WriteLine("held-out loss: " + string.Join(", ", report.HeldOut.Select(e => string.Create(inv, $"{e.Loss:F3} @ {e.Step}"))));
        console.Plain.WriteLine(string.Create(inv, $"{steps.Count} steps in {report.WallSeconds:F1} s, {report.TokensPerSecond:N0} tokens/s, {report.Parameters:N0} parameters"));
        if (report.Memory is { } memory) console.Plain.WriteLine($"memory per device (the busiest): {memory}");
        if (steps[^1].Experts is { } experts)
            console.Plain.WriteLine(string.Create(inv, $"experts (last step): {experts}; busiest expert over the run {steps.Max(s => s.Experts?.MaxOverMean ?? 1):F2}x the mean"));
    }
}
