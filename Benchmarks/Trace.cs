using System.Globalization;

namespace Elastic.Benchmarks;

/// <summary>A spot availability trace: <c>milliseconds,add|remove,node</c> per line.</summary>
internal sealed record Trace(IReadOnlyList<TraceEvent> Events)
{
    public TimeSpan Duration => Events[^1].At;

    public int MaxAlive
    {
        get
        {
            var (alive, max) = (new HashSet<string>(), 0);
            foreach (var e in Events)
            {
                if (e.Add) alive.Add(e.Node);
                else alive.Remove(e.Node);
                max = Math.Max(max, alive.Count);
            }
            return max;
        }
    }

    /// <summary>The events up to <paramref name="end"/>.</summary>
    public Trace Until(TimeSpan end) => new(Events.Where(e => e.At <= end).ToList());

    public static Trace Read(string path) => new(File.ReadLines(path).Where(l => l.Trim().Length > 0).Select((line, i) =>
    {
        var fields = line.Split(',');
        if (fields.Length != 3 || !long.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) || fields[1] is not ("add" or "remove"))
            throw new FormatException($"{path} line {i + 1}: '{line}' is not 'milliseconds,add|remove,node'");
        return new TraceEvent(TimeSpan.FromMilliseconds(ms), fields[1] == "add", fields[2]);
    }).ToList());
}

internal sealed record TraceEvent(TimeSpan At, bool Add, string Node);
