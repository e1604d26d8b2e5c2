using System.Globalization;

namespace Elastic.Benchmarks;

/// <summary>A spot availability trace of <paramref name="Duration"/>: <c>milliseconds,add|remove,node</c> per line in a file.</summary>
internal sealed record Trace(IReadOnlyList<TraceEvent> Events, TimeSpan Duration)
{

    public int MaxAlive => Alive().Max(a => a.Count);

    public int Removals => Events.Count(e => !e.Add);

    public int Additions => Events.Count(e => e.Add && e.At > TimeSpan.Zero);

    /// <summary>The instants after the start at which nodes come or go: a job on all of them changes this many times.</summary>
    public int Changes => Events.Where(e => e.At > TimeSpan.Zero).Select(e => e.At).Distinct().Count();

    /// <summary>How many nodes are alive after each instant with events, in time order.</summary>
    public IEnumerable<(TimeSpan At, int Count)> Alive()
    {
        var alive = new HashSet<string>();
        foreach (var group in Events.GroupBy(e => e.At))
        {
            foreach (var e in group)
            {
                if (e.Add) alive.Add(e.Node);
                else alive.Remove(e.Node);
            }
            yield return (group.Key, alive.Count);
        }
    }

    /// <summary>The mean number of nodes alive over the trace, weighted by time.</summary>
    public double MeanAlive()
    {
        var alive = Alive().ToList();
        return alive.Zip(alive.Skip(1).Select(a => a.At).Append(Duration)).Sum(p => p.First.Count * (p.Second - p.First.At).TotalMilliseconds) / Duration.TotalMilliseconds;
    }

    /// <summary>The events up to <paramref name="end"/>.</summary>
    public Trace Until(TimeSpan end) => new(Events.Where(e => e.At <= end).ToList(), end < Duration ? end : Duration);

    /// <summary>
    /// The trace on at most <paramref name="slots"/> nodes: every <paramref name="bucket"/> trace nodes alive (rounded up)
    /// make one node. A node removed is the one added last; the count follows the trace at each instant.
    /// </summary>
    public Trace Mapped(int bucket, int slots)
    {
        var events = new List<TraceEvent>();
        var alive = new Stack<string>();
        var next = 1;
        foreach (var (at, count) in Alive())
        {
            var target = Math.Min(slots, (count + bucket - 1) / bucket);
            while (alive.Count > target) events.Add(new TraceEvent(at, false, alive.Pop()));
            while (alive.Count < target)
            {
                alive.Push($"slot{next++}");
                events.Add(new TraceEvent(at, true, alive.Peek()));
            }
        }
        return new Trace(events, Duration);
    }

    /// <summary>
    /// A synthetic trace from <paramref name="seed"/>: <paramref name="nodes"/> nodes alive at the start; removals arrive as a
    /// Poisson process (mean gap <paramref name="meanGap"/>), a quarter of them bursts that take 2 or 3 nodes within 5 s;
    /// a removed node returns after an exponential time (mean <paramref name="meanReturn"/>). Node names never repeat.
    /// </summary>
    public static Trace Synthetic(int seed, int nodes, TimeSpan duration, TimeSpan meanGap, TimeSpan meanReturn)
    {
        var random = new Random(seed);
        double Exponential(TimeSpan mean) => -Math.Log(1 - random.NextDouble()) * mean.TotalMilliseconds;
        var events = Enumerable.Range(1, nodes).Select(n => new TraceEvent(TimeSpan.Zero, true, $"node{n}")).ToList();
        var alive = events.Select(e => e.Node).ToList();
        var returns = new PriorityQueue<TimeSpan, TimeSpan>();
        var named = nodes;
        for (var at = TimeSpan.FromMilliseconds(Exponential(meanGap)); at < duration; at += TimeSpan.FromMilliseconds(Exponential(meanGap)))
        {
            while (returns.TryPeek(out var back, out _) && back <= at)
            {
                returns.Dequeue();
                alive.Add($"node{++named}");
                events.Add(new TraceEvent(back, true, alive[^1]));
            }
            var burst = random.NextDouble() < 0.25 ? random.Next(2, 4) : 1;
            for (var i = 0; i < burst && alive.Count > 0; i++)
            {
                var gone = alive[random.Next(alive.Count)];
                alive.Remove(gone);
                var when = at + TimeSpan.FromMilliseconds(i == 0 ? 0 : random.Next(0, 5000));
                events.Add(new TraceEvent(when, false, gone));
                var back = when + TimeSpan.FromMilliseconds(Exponential(meanReturn));
                returns.Enqueue(back, back);
            }
        }
        while (returns.TryDequeue(out var back, out _) && back < duration) events.Add(new TraceEvent(back, true, $"node{++named}"));
        return new Trace(events.OrderBy(e => e.At).ToList(), duration);
    }

    /// <summary>A recorded trace; it lasts until its last event.</summary>
    public static Trace Read(string path)
    {
        var events = File.ReadLines(path).Where(l => l.Trim().Length > 0).Select((line, i) =>
        {
            var fields = line.Split(',');
            if (fields.Length != 3 || !long.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) || fields[1] is not ("add" or "remove"))
                throw new FormatException($"{path} line {i + 1}: '{line}' is not 'milliseconds,add|remove,node'");
            return new TraceEvent(TimeSpan.FromMilliseconds(ms), fields[1] == "add", fields[2]);
        }).ToList();
        return new Trace(events, events[^1].At);
    }
}

internal sealed record TraceEvent(TimeSpan At, bool Add, string Node);
