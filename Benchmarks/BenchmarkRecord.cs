using System.Text;
using System.Text.RegularExpressions;

namespace Elastic.Benchmarks;

/// <summary>Writes one benchmark's latest figures into its own section of docs/benchmarks.md, with the date and the machine.</summary>
internal static partial class BenchmarkRecord
{
    public static void Write(string name, string title, string command, string body)
    {
        var path = Path.Combine(RepositoryRoot(), "docs", "benchmarks.md");
        var text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n";
        var section = new StringBuilder()
            .AppendLine($"<!-- {name}:start -->")
            .AppendLine($"## {title}")
            .AppendLine()
            .AppendLine($"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()} with `{command}`.")
            .AppendLine()
            .Append(body.TrimEnd()).AppendLine()
            .Append($"<!-- {name}:end -->")
            .ToString();
        var pattern = new Regex($"<!-- {Regex.Escape(name)}:start -->.*?<!-- {Regex.Escape(name)}:end -->", RegexOptions.Singleline);
        text = pattern.IsMatch(text) ? pattern.Replace(text, section.Replace("$", "$$")) : text.TrimEnd() + "\n\n" + section + "\n";
        File.WriteAllText(path, text);
        Console.WriteLine($"recorded in {path}");
    }

    private static string Machine()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024);
        return $"{Environment.ProcessorCount} cores ({cpu ?? "unknown CPU"}), {memory:F0} GiB, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Elastic.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
