using System.Globalization;

namespace Elastic.Benchmarks.Chaos;

/// <summary>One sample of a silo process: resident memory (MiB), threads, open file handles and sockets.</summary>
public sealed record ResourceSample(TimeSpan At, string Silo, int Incarnation, double MemoryMiB, int Threads, int Handles, int Sockets);

/// <summary>Reads a process's resources from /proc (Linux), as a soak watches for leaks.</summary>
public static class ResourceSampler
{
    public static ResourceSample? Sample(TimeSpan at, string silo, int incarnation, int pid)
    {
        try
        {
            var status = File.ReadAllLines($"/proc/{pid}/status");
            double Field(string name) => double.Parse(status.First(l => l.StartsWith(name + ":", StringComparison.Ordinal)).Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            var handles = Directory.GetFiles($"/proc/{pid}/fd");
            var sockets = handles.Count(h => new FileInfo(h).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true);
            return new ResourceSample(at, silo, incarnation, Field("VmRSS") / 1024, (int)Field("Threads"), handles.Length, sockets);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or FormatException)
        {
            // The process exited between the listing and the read.
            return null;
        }
    }
}

/// <summary>A least-squares line through a series, its slope with a 95 % confidence interval (normal approximation).</summary>
public sealed record Trend(string Metric, string Series, int Samples, double Mean, double SlopePerHour, double SlopeLow, double SlopeHigh)
{
    /// <summary>Growth that is both certain (the interval lies above zero) and material (over 2 % of the mean per hour).</summary>
    public bool Grows => SlopeLow > 0 && SlopePerHour > 0.02 * Math.Abs(Mean);

    public static Trend Fit(string metric, string series, IReadOnlyList<(double Hours, double Value)> points)
    {
        var n = points.Count;
        var meanX = points.Average(p => p.Hours);
        var meanY = points.Average(p => p.Value);
        var sxx = points.Sum(p => (p.Hours - meanX) * (p.Hours - meanX));
        var slope = sxx == 0 ? 0 : points.Sum(p => (p.Hours - meanX) * (p.Value - meanY)) / sxx;
        var residual = points.Sum(p => Math.Pow(p.Value - (meanY + slope * (p.Hours - meanX)), 2));
        var error = n > 2 && sxx > 0 ? Math.Sqrt(residual / (n - 2) / sxx) : double.PositiveInfinity;
        return new Trend(metric, series, n, meanY, slope, slope - 1.96 * error, slope + 1.96 * error);
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Metric,-9} {Series,-14} n={Samples,4}  mean {Mean,9:F1}  slope {SlopePerHour,9:F2}/h  95% [{SlopeLow:F2}, {SlopeHigh:F2}]  {(Grows ? "GROWS" : "no growth")}");
}
