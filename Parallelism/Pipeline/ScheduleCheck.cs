namespace Elastic.Parallelism.Pipeline;

/// <summary>
/// A schedule run in the timing model: when it ends, each stage's busy time, the most micro-batches whose activations it
/// held at once, and when each op started.
/// </summary>
public sealed record ScheduleRun(double Makespan, IReadOnlyList<double> Busy, IReadOnlyList<int> PeakInFlight,
    IReadOnlyList<IReadOnlyList<(PipelineOp Op, double Start, double End)>> Timeline)
{
    /// <summary>The share of the step stage <paramref name="stage"/> spends waiting: its pipeline bubble.</summary>
    public double IdleFraction(int stage) => 1 - Busy[stage] / Makespan;

    /// <summary>
    /// The timeline as text, one row per stage and <paramref name="slot"/> time units per character: a forward shows its
    /// micro-batch as a digit (0, 1, ..., then lower-case letters), a backward as an upper-case letter (A for micro-batch 0,
    /// B for 1, ...), idle time as dots.
    /// </summary>
    public string Picture(double slot)
    {
        var width = (int)Math.Ceiling(Makespan / slot - 1e-9);
        return string.Join("\n", Timeline.Select((ops, stage) =>
        {
            var row = Enumerable.Repeat('.', width).ToArray();
            foreach (var (op, start, end) in ops)
                for (var t = (int)Math.Round(start / slot); t < (int)Math.Round(end / slot); t++)
                    row[t] = op.Kind == PipelineOpKind.Forward ? "0123456789abcdefghijklmnopqrstuvwxyz"[op.Micro % 36] : (char)('A' + op.Micro % 26);
            return $"stage {stage} | {new string(row)}";
        }));
    }
}

/// <summary>
/// Checks the stages' op lists against each other before anything runs: every (micro-batch, chunk) forward and backward
/// exactly once on the stage that holds the chunk; on every directed link between two stages, the messages (activations
/// forward, their gradients backward) are received in the order they are sent, since links carry untagged frames in
/// order; and no stage waits forever. Then it times the schedule with fixed forward and backward durations.
/// </summary>
public static class ScheduleCheck
{
    /// <param name="ops">Per stage, its ops in order.</param>
    /// <param name="chunks">Model chunks (stages x virtual stages); chunk c lives on stage c mod stages.</param>
    /// <exception cref="InvalidOperationException">The schedule is incomplete, would mismatch a link, or deadlocks; the message says where.</exception>
    public static ScheduleRun Run(IReadOnlyList<IReadOnlyList<PipelineOp>> ops, int micros, int chunks, double forward = 1, double backward = 2)
    {
        var stages = ops.Count;
        int StageOf(int chunk) => chunk % stages;
        CheckCoverage(ops, micros, chunks, StageOf);
        CheckLinks(ops, chunks, StageOf);

        var done = new Dictionary<PipelineOp, double>();
        var next = new int[stages];
        var free = new double[stages];
        var busy = new double[stages];
        var inFlight = new int[stages];
        var peak = new int[stages];
        var timeline = Enumerable.Range(0, stages).Select(_ => new List<(PipelineOp, double, double)>()).ToArray();
        IEnumerable<PipelineOp> DependenciesOf(PipelineOp op) => op.Kind == PipelineOpKind.Forward
            ? op.Chunk > 0 ? [op with { Chunk = op.Chunk - 1 }] : []
            : op.Chunk < chunks - 1 ? [op with { Kind = PipelineOpKind.Forward }, op with { Chunk = op.Chunk + 1 }] : [op with { Kind = PipelineOpKind.Forward }];
        for (var progress = true; progress;)
        {
            progress = false;
            for (var s = 0; s < stages; s++)
                while (next[s] < ops[s].Count && DependenciesOf(ops[s][next[s]]).All(done.ContainsKey))
                {
                    var op = ops[s][next[s]++];
                    var duration = op.Kind == PipelineOpKind.Forward ? forward : backward;
                    var start = DependenciesOf(op).Select(d => done[d]).Append(free[s]).Max();
                    done[op] = free[s] = start + duration;
                    timeline[s].Add((op, start, start + duration));
                    busy[s] += duration;
                    inFlight[s] += op.Kind == PipelineOpKind.Forward ? 1 : -1;
                    peak[s] = Math.Max(peak[s], inFlight[s]);
                    progress = true;
                }
        }
        var stuck = Enumerable.Range(0, stages).Where(s => next[s] < ops[s].Count).ToList();
        if (stuck.Count > 0)
            throw new InvalidOperationException("the schedule deadlocks: " + string.Join("; ", stuck.Select(s =>
                $"stage {s} waits at {ops[s][next[s]]} for {string.Join(", ", DependenciesOf(ops[s][next[s]]).Where(d => !done.ContainsKey(d)))}")));
        return new ScheduleRun(free.Max(), busy, peak, timeline);
    }

    private static void CheckCoverage(IReadOnlyList<IReadOnlyList<PipelineOp>> ops, int micros, int chunks, Func<int, int> stageOf)
    {
        for (var s = 0; s < ops.Count; s++)
        {
            var expected = Enumerable.Range(0, chunks).Where(c => stageOf(c) == s)
                .SelectMany(c => Enumerable.Range(0, micros).SelectMany(m => new[] { new PipelineOp(PipelineOpKind.Forward, m, c), new PipelineOp(PipelineOpKind.Backward, m, c) }))
                .ToHashSet();
            var seen = new HashSet<PipelineOp>();
            foreach (var op in ops[s])
                if (!expected.Contains(op) || !seen.Add(op))
                    throw new InvalidOperationException($"stage {s} runs {op} {(expected.Contains(op) ? "twice" : "but does not hold that chunk or micro-batch")}");
            if (seen.Count != expected.Count)
                throw new InvalidOperationException($"stage {s} never runs {expected.Except(seen).First()}");
        }
    }

    /// <summary>Messages in send order on each directed link must be the messages in receive order on it.</summary>
    private static void CheckLinks(IReadOnlyList<IReadOnlyList<PipelineOp>> ops, int chunks, Func<int, int> stageOf)
    {
        var sent = new Dictionary<(int From, int To), List<PipelineOp>>();
        var received = new Dictionary<(int From, int To), List<PipelineOp>>();
        void Add(Dictionary<(int, int), List<PipelineOp>> links, int from, int to, PipelineOp message)
        {
            if (from == to) return;
            if (!links.TryGetValue((from, to), out var list)) links[(from, to)] = list = [];
            list.Add(message);
        }
        for (var s = 0; s < ops.Count; s++)
            foreach (var op in ops[s])
                if (op.Kind == PipelineOpKind.Forward)
                {
                    // Named by the op that consumes it: the next chunk's forward, or (backward) the previous chunk's backward.
                    if (op.Chunk < chunks - 1) Add(sent, s, stageOf(op.Chunk + 1), op with { Chunk = op.Chunk + 1 });
                    if (op.Chunk > 0) Add(received, stageOf(op.Chunk - 1), s, op);
                }
                else
                {
                    if (op.Chunk > 0) Add(sent, s, stageOf(op.Chunk - 1), op with { Chunk = op.Chunk - 1 });
                    if (op.Chunk < chunks - 1) Add(received, stageOf(op.Chunk + 1), s, op);
                }
        foreach (var (link, messages) in sent)
        {
            var order = received.GetValueOrDefault(link) ?? [];
            var at = Enumerable.Range(0, Math.Min(messages.Count, order.Count)).FirstOrDefault(i => messages[i] != order[i], -1);
            if (at >= 0 || messages.Count != order.Count)
                throw new InvalidOperationException(at >= 0
                    ? $"link {link.From} -> {link.To}: message {at} is sent for {messages[at]} but received for {order[at]}"
                    : $"link {link.From} -> {link.To}: {messages.Count} message(s) sent, {order.Count} received");
        }
    }
}
