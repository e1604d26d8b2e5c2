using System.Globalization;
using System.Text;
using Elastic.Benchmarks.Chaos;

namespace Elastic.Benchmarks;

/// <summary>
/// <c>chaos --minutes M --seed S [--silos N] [--jobs N] [--steps N] [--faults KIND,...] [--soak] [--record]</c>: a seeded chaos run against a
/// multi-process cluster (see <see cref="ChaosRun"/>). Prints the faults as they land, then the figures, every violated
/// invariant (the job, the step, what was seen) and, for processes that lived ten minutes or more, the resource trends.
/// Exits 1 when an invariant fails or (with --soak) a resource grows.
/// </summary>
internal static class ChaosCommand
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        string? Option(string name) => Array.IndexOf(args, name) is >= 0 and var i && i + 1 < args.Length ? args[i + 1] : null;
        var minutes = double.Parse(Option("--minutes") ?? "5", inv);
        var seed = int.Parse(Option("--seed") ?? "1", inv);
        var soak = args.Contains("--soak");
        var folder = Directory.CreateTempSubdirectory("elastic-chaos-").FullName;
        var options = new ChaosOptions(TimeSpan.FromMinutes(minutes), seed, folder, BenchmarkRecord.RepositoryRoot(), Console.WriteLine)
        {
            Silos = int.Parse(Option("--silos") ?? "4", inv),
            JobSlots = int.Parse(Option("--jobs") ?? "3", inv),
            Steps = int.Parse(Option("--steps") ?? "150", inv),
            Soak = soak,
            Kinds = Option("--faults") is { } kinds ? Kinds(kinds) : null,
        };
        if (options.Kinds is { Count: 0 })
        {
            Console.Error.WriteLine($"--faults {Option("--faults")}: name kinds among {string.Join(", ", Enum.GetNames<FaultKind>())}, separated by commas");
            return 2;
        }
        Console.WriteLine($"chaos: seed {seed}, {minutes} min of faults, {options.Silos} silos, {options.JobSlots} jobs at a time; logs in {folder}");
        var result = await ChaosRun.RunAsync(options);
        var report = Report(result, options);
        Console.WriteLine(report);
        foreach (var violation in result.Violations) Console.WriteLine($"VIOLATION {violation}");
        var grows = soak && result.Trends.Any(t => t.Grows);
        if (args.Contains("--record"))
            BenchmarkRecord.Write(soak ? "chaos-soak" : "chaos", soak ? "Chaos and soak" : "Chaos",
                $"dotnet run -c Release --project Benchmarks -- chaos --minutes {minutes} --seed {seed}{(soak ? " --soak" : "")} --record", report);
        if (result.Violations.Count == 0 && !grows) Directory.Delete(folder, recursive: true);
        return result.Violations.Count > 0 || grows ? 1 : 0;
    }

    /// <summary>The kinds named (empty when one is not a kind).</summary>
    private static HashSet<FaultKind> Kinds(string text)
    {
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var kinds = names.Select(n => Enum.TryParse<FaultKind>(n, ignoreCase: true, out var kind) ? kind : (FaultKind?)null).ToList();
        return kinds.All(k => k is not null) ? kinds.Select(k => k!.Value).ToHashSet() : [];
    }

    private static string Report(ChaosResult result, ChaosOptions options)
    {
        var f = result.Figures;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{options.Silos} silo processes x {options.DevicesPerSilo} CPU devices, Azurite behind fault proxies, the API as its own process; {options.JobSlots} jobs at a time ({options.Steps} steps each, priorities 2/1/0), each followed by another until the {options.Window.TotalMinutes:F0}-minute window ended; {result.Elapsed.TotalMinutes:F1} min in all.")
            .AppendLine()
            .AppendLine("| fault | applied |")
            .AppendLine("|---|---|");
        foreach (var kind in Enum.GetValues<FaultKind>())
            text.AppendLine(CultureInfo.InvariantCulture, $"| {kind} | {result.Applied.Count(a => a.Fault.Kind == kind)} |");
        var recovery = f.RecoverySeconds;
        text.AppendLine()
            .AppendLine("| figure | value |")
            .AppendLine("|---|---|")
            .AppendLine(CultureInfo.InvariantCulture, $"| jobs | {f.Jobs} ({f.JobsFailed} not completed) |")
            .AppendLine(CultureInfo.InvariantCulture, $"| steps committed | {f.StepsCommitted} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| re-plans | {f.Replans} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| committed steps lost while a replica could have kept them | {f.StepsLost} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| committed steps lost with every silo of the job's plan (back to its checkpoint) | {f.StepsLostWithEveryReplica} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| steps trained again after the run's own resumes | {f.StepsRetrainedAfterResume} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| fault to training again (a job that re-planned), p50 / p99 | {(recovery.Count == 0 ? "none" : $"{Statistics.Percentile(recovery, 50):F1} s / {Statistics.Percentile(recovery, 99):F1} s over {recovery.Count}")} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| invariants violated | {result.Violations.Count} |");
        if (result.Trends.Count > 0)
        {
            text.AppendLine().AppendLine("Resource trends of silo processes that lived ten minutes or more (after a two-minute warm-up):").AppendLine().AppendLine("```");
            foreach (var trend in result.Trends) text.AppendLine(trend.ToString());
            text.AppendLine("```");
        }
        return text.ToString();
    }
}
