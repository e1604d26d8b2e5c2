using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Silo.Hosting;

namespace Elastic.Benchmarks;

/// <summary>
/// Replays spot churn, time-compressed, onto an in-process cluster where both runs use the same nodes and see the same events:
/// the AWS p3 trace of the Bamboo paper (../shared/traces/aws-p3-spot.csv, up to 32 nodes over 11.4 h) mapped onto at most 8
/// nodes (<see cref="Trace.Mapped"/>), and a seeded synthetic trace (<see cref="Trace.Synthetic"/>). Each node is a silo
/// with one device and every node alive is a device of the job (32 micro-batches per step: each of 1 to 8 replicas shortens
/// a step, so the job takes them all), so every removal hits it. The same data-parallel job runs
/// three ways: elastic with a (scaled) 30 s eviction notice before every removal, elastic with no notice (removals are
/// kills), and the checkpoint-restart baseline (as torchrun does: at every change of its nodes it stops and restarts from
/// its latest checkpoint). Reports ETTR, goodput per node alive, lost steps and pauses.
/// </summary>
internal static partial class SpotTraceReplay
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static async Task<int> Run(string[] args)
    {
        if (args is ["describe", .. var rest]) return Describe(ReplayOptions.Parse(rest).Churn ?? []);
        var options = ReplayOptions.Parse(args);
        var notice = TimeSpan.FromSeconds(30 / options.Scale);
        if (options.Churn is { } churn) return await ChurnSweep.Run(options, churn, notice);
        var sections = new List<string>();
        var traces = Traces();
        foreach (var (name, full) in traces.Where(t => options.Traces.Contains(t.Key)).Select(t => (t.Name, t.Trace)))
        {
            var trace = double.IsPositiveInfinity(options.Hours) ? full : full.Until(TimeSpan.FromHours(options.Hours));
            foreach (var cadence in options.CheckpointMinutes)
            {
                Console.WriteLine(string.Create(Inv, $"{name}: {trace.Duration.TotalHours:F1} h, {trace.Removals} removals, {trace.Additions} additions, replayed in {trace.Duration.TotalMinutes / options.Scale:F1} min (x{options.Scale:F0}); notice {notice.TotalMilliseconds:F0} ms; a checkpoint every {cadence} min of trace time"));
                var results = new List<Result>();
                foreach (var mode in options.Modes)
                {
                    var result = await Replay(trace, options.Scale, notice, cadence, mode);
                    Console.WriteLine(result.Line());
                    results.Add(result);
                }
                if (results.Count == 3) sections.Add(Section(name, trace, options.Scale, cadence, results));
            }
        }
        if (sections.Count != options.CheckpointMinutes.Count * traces.Length) return 0;
        var table = string.Join("\n\n", [
            .. sections,
            string.Create(Inv, $"Both runs on the same nodes with the same events: each node of the trace is a silo with one virtual CPU device, and every node alive is a device of the job (dp = the nodes alive, 1 to 8: with 32 micro-batches per step each more replica shortens a step, and uneven blocks keep the bits); one more silo without devices hosts membership and the coordinator. ") +
            "The AWS p3 trace (Bamboo, up to 32 nodes) is mapped onto at most 8 nodes: every 4 trace nodes alive (rounded up) make one node, so that no node is ever idle and every removal hits the job; a node removed is the one added last. " +
            "The synthetic trace: seed 16, 8 nodes, a removal every 6 minutes on average (a Poisson process; a quarter of them bursts of 2 or 3 nodes within 5 s), each removed node back after 15 minutes on average. " +
            string.Create(Inv, $"Elastic: with a 30 s eviction notice (scaled: {notice.TotalMilliseconds:F0} ms) before every removal, or none (removals are kills); it grows onto added nodes. Checkpoint-restart (torchrun's way): at every change of its nodes it stops and restarts from its latest checkpoint on the nodes then alive. ") +
            "A GPT of 2 layers, d=64, context 64, batch 32 = 32 x 1; the same checkpoint cadence in all runs of a table, in minutes of trace time (scaled like the trace). " +
            "ETTR = seconds of the steps that remain committed at the end / wall seconds. Goodput = samples of the steps kept per wall second / the mean number of nodes alive. Pause: elastic, from the start of a re-plan to the new plan ready (job event); checkpoint-restart, from the stop request to the first step committed after the restart (a restart with no node to train on before the next change has none). " +
            "Kill -> training again: from the kill to the first step committed by the new plan (includes failure detection). On 2 shared cores the step time does not improve with dp, so ETTR and goodput ratios, not throughput, are the figures that carry over. What the ratio depends on (the checkpoint cadence and how often the job's nodes change), and a check of the compression at x60: [elasticity.md](elasticity.md#measured).",
        ]);
        Console.WriteLine(table);
        BenchmarkRecord.Write("spot-trace", "Spot trace replay: elastic re-planning against checkpoint-restart, on the same nodes",
            $"dotnet run -c Release --project Benchmarks -- spot-trace {options.Command}", table);
        return 0;
    }

    private static string Section(string name, Trace trace, double scale, double cadence, List<Result> results)
    {
        var (notice, kills, baseline) = (Of(Mode.ElasticWithNotice), Of(Mode.ElasticNoNotice), Of(Mode.CheckpointRestart));
        return string.Join("\n", [
            string.Create(Inv, $"**{name}, a checkpoint every {cadence} min** ({trace.Duration.TotalHours:F1} h: {trace.Removals} removals, {trace.Additions} additions, at most {trace.MaxAlive} nodes, {trace.MeanAlive():F2} alive on average; replayed in {trace.Duration.TotalMinutes / scale:F1} min, x{scale:F0}):"),
            "",
            "| run | ETTR | goodput (samples/s per device alive) | committed steps kept | lost steps | re-plans / restarts | median pause (s) | p90 pause (s) | kill -> training again, median (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            .. results.Select(r => r.Row()),
            "",
            string.Create(Inv, $"ETTR elastic / checkpoint-restart: **{notice.Ettr / baseline.Ettr:F1}x with notice, {kills.Ettr / baseline.Ettr:F1}x without**; goodput {notice.Goodput / baseline.Goodput:F1}x and {kills.Goodput / baseline.Goodput:F1}x."),
        ]);

        Result Of(Mode mode) => results.Single(r => r.Mode == mode);
    }

    /// <summary>The traces replayed: the AWS trace mapped onto at most 8 nodes, and the synthetic one.</summary>
    internal static (string Key, string Name, Trace Trace)[] Traces() =>
    [
        ("aws", "AWS p3 trace, mapped 4 -> 1 onto at most 8 nodes", Trace.Read(Path.Combine(BenchmarkRecord.RepositoryRoot(), "..", "shared", "traces", "aws-p3-spot.csv")).Mapped(4, 8)),
        ("synthetic", "Synthetic trace, seed 16", SyntheticTrace().Mapped(1, 8)),
    ];

    /// <summary>
    /// The traces a fair replay uses, without replaying them: the whole AWS trace mapped onto at most 8 nodes (4 trace nodes
    /// to 1), and the synthetic trace of the documented seed.
    /// </summary>
    private static int Describe(IReadOnlyList<double> churns)
    {
        var whole = Trace.Read(Path.Combine(BenchmarkRecord.RepositoryRoot(), "..", "shared", "traces", "aws-p3-spot.csv"));
        var traces = Traces().Select(t => (t.Name, t.Trace)).Prepend(("AWS p3 trace as recorded", whole))
            .Concat(churns.Select(k => (string.Create(Inv, $"Synthetic trace, seed 16, x{k} churn"), SyntheticTrace(k).Mapped(1, 8))));
        foreach (var (name, trace) in traces)
            Console.WriteLine(string.Create(Inv, $"{name}: {trace.Duration.TotalHours:F1} h, {trace.Removals} removals, {trace.Additions} additions, {trace.Changes} changes, at most {trace.MaxAlive} nodes, {trace.MeanAlive():F2} alive on average"));
        return 0;
    }

    /// <summary>
    /// The synthetic trace: 8 nodes, a removal every 6 minutes on average (a quarter in bursts), nodes back after 15 minutes on
    /// average, 4 hours; at <paramref name="churn"/> k both k times sooner, so that as many nodes are alive on average.
    /// </summary>
    public static Trace SyntheticTrace(double churn = 1) =>
        Trace.Synthetic(16, 8, TimeSpan.FromHours(4), TimeSpan.FromMinutes(6 / churn), TimeSpan.FromMinutes(15 / churn));

    internal enum Mode { ElasticWithNotice, ElasticNoNotice, CheckpointRestart }

    /// <param name="restartCharge">What each of the baseline's restarts costs besides the warm in-process restart (process start,
    /// rendezvous, loading from storage: measured by <see cref="RestartCost"/>), already scaled like the trace.</param>
    internal static async Task<Result> Replay(Trace trace, double scale, TimeSpan notice, double cadence, Mode mode, TimeSpan restartCharge = default)
    {
        var checkpoints = Directory.CreateTempSubdirectory("elastic-spot-").FullName;
        // A silo without devices hosts membership and the coordinator: every device of the cluster is a node of the trace.
        await using var cluster = await EmbeddedCluster.StartAsync([0], checkpoints);
        var nodes = new ConcurrentDictionary<string, SiloAddress>();
        foreach (var e in trace.Events.Where(e => e.At == TimeSpan.Zero && e.Add)) nodes[e.Node] = await cluster.AddSiloAsync(1, spot: true);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]));
        var client = connection.Client;
        await client.WaitForDevicesAsync(nodes.Count, TimeSpan.FromSeconds(60));
        var spec = new TrainingSpec
        {
            Name = "spot",
            Steps = 1_000_000,
            Model = new ModelSpec { Layers = 2, DModel = 64, Heads = 4, Context = 64, Dropout = 0.1 },
            // 32 micro-batches: every width from 1 to 8 shortens a step, so the job always runs on every node alive.
            Batch = new BatchSpec { Global = 32, Micro = 1 },
            Eval = new EvalSpec { Every = 0, Batches = 1 },
            Devices = new DeviceSpec { Min = 1, Max = 8 },
            // Minutes of trace time, scaled like the trace; the same in all runs of a table.
            Checkpoint = new CheckpointSpec { EveryMinutes = cadence / scale, KeepLast = 2 },
        };
        var jobId = await client.SubmitAsync(spec);
        while ((await client.GetStatusAsync(jobId)).CommittedStep < 1) await Task.Delay(20);
        // A first checkpoint before the replay, so that every run has one to restart from.
        await client.CheckpointAsync(jobId);
        while ((await client.GetStatusAsync(jobId)).LastCheckpointStep is null) await Task.Delay(20);

        // Only the steps committed during the replay count: the ones before it (and the first checkpoint) are set-up.
        var setUp = (await client.GetStatusAsync(jobId)).CommittedStep;
        var clock = Stopwatch.StartNew();
        var (restarts, restartPauses, killRecoveries, lost) = (0, new List<Task<double?>>(), new List<Task<double>>(), 0L);
        CancellationTokenSource? untrained = null;
        var changes = trace.Events.Where(e => e.At > TimeSpan.Zero).GroupBy(e => e.At).OrderBy(g => g.Key).ToList();
        var end = trace.Duration / scale;
        // With notice, each removal's silo starts draining (as on an eviction notice) ahead of the removal, on its own schedule.
        var drains = mode != Mode.ElasticWithNotice ? [] : changes.SelectMany(g => g.Where(e => !e.Add)).Select(removal =>
            DrainAt(clock, removal.At / scale - notice, () => nodes.TryGetValue(removal.Node, out var silo)
                ? cluster.DrainSiloAsync(silo, $"eviction notice for {removal.Node}")
                : Task.CompletedTask)).ToList();
        // Apply the changes in time order.
        foreach (var group in changes)
        {
            var wait = group.Key / scale - clock.Elapsed;
            if (wait > TimeSpan.Zero) await Task.Delay(wait);
            // A restart that has not trained again by the next change (no node was alive) has no pause of its own to report.
            untrained?.Cancel();
            var stop = mode == Mode.CheckpointRestart ? await StopForRestart(client, jobId) : null;
            var before = mode == Mode.ElasticNoNotice ? await client.GetStatusAsync(jobId) : null;
            foreach (var e in group)
            {
                if (e.Add && !nodes.ContainsKey(e.Node)) nodes[e.Node] = await cluster.AddSiloAsync(1, spot: true);
                else if (!e.Add && nodes.TryRemove(e.Node, out var silo))
                    await (mode == Mode.ElasticNoNotice ? cluster.KillSiloAsync(silo) : cluster.StopSiloAsync(silo));
            }
            if (before is not null && group.Any(e => !e.Add)) killRecoveries.Add(TrainingAgain(client, jobId, before.Replans));
            var now = await client.GetStatusAsync(jobId);
            Console.WriteLine(string.Create(Inv, $"  {clock.Elapsed.TotalSeconds,6:F1} s: {string.Join(" ", group.Select(e => (e.Add ? "+" : "-") + e.Node))} -> {nodes.Count} node(s); job {now.State} step {now.CommittedStep} dp {now.Plan?.Dp}"));
            if (stop is { } s)
            {
                if (restartCharge > TimeSpan.Zero) await Task.Delay(restartCharge);
                var resumed = await client.ResumeAsync(jobId);
                lost += s.Committed - resumed.CommittedStep;
                restarts++;
                untrained = new CancellationTokenSource();
                restartPauses.Add(FirstStepAfter(client, jobId, resumed.CommittedStep, s.Clock, untrained.Token));
            }
        }
        await Task.WhenAll(drains);
        untrained?.Cancel();
        var remaining = end - clock.Elapsed;
        if (remaining > TimeSpan.Zero) await Task.Delay(remaining);
        var wall = clock.Elapsed.TotalSeconds;
        try
        {
            await client.CancelAsync(jobId);
        }
        catch (JobStateException e)
        {
            // The job ended before the replay did (it failed): a finding to report with its events, not a crash.
            Console.WriteLine($"  the job ended during the replay: {e.Message}");
        }
        var final = await client.WaitForCompletionAsync(jobId);
        var report = await client.GetReportAsync(jobId);
        var events = new List<JobEvent>();
        await foreach (var progress in client.WatchAsync(jobId)) events.AddRange(progress.Events);
        var replans = events.Where(e => e.Kind == "replanned").ToList();
        foreach (var e in events.Where(e => e.Kind is not ("checkpoint" or "checkpoint-failed"))) Console.WriteLine($"    {e}");
        var pauses = mode == Mode.CheckpointRestart
            ? (await Task.WhenAll(restartPauses)).OfType<double>().ToList()
            : replans.Select(e => Paused().Match(e.Message)).Where(m => m.Success).Select(m => double.Parse(m.Groups[1].Value, Inv)).ToList();
        if (mode != Mode.CheckpointRestart)
            lost = replans.Select(e => Lost().Match(e.Message)).Where(m => m.Success).Sum(m => long.Parse(m.Groups[1].Value, Inv));
        var recoveries = (await Task.WhenAll(killRecoveries)).Where(t => t > 0).ToList();
        Directory.Delete(checkpoints, recursive: true);
        var replayed = report.Steps.Where(s => s.Step > setUp).ToList();
        var kept = replayed.Sum(s => s.Milliseconds) / 1000;
        var samples = (double)replayed.Count * spec.Batch.Global;
        return new Result(mode, kept / wall, samples / wall / trace.MeanAlive(), replayed.Count, lost, mode == Mode.CheckpointRestart ? restarts : final.Replans, pauses, recoveries);
    }

    private static async Task DrainAt(Stopwatch clock, TimeSpan at, Func<Task> drain)
    {
        var wait = at - clock.Elapsed;
        if (wait > TimeSpan.Zero) await Task.Delay(wait);
        try
        {
            await drain();
        }
        catch (ArgumentException)
        {
            // The node was removed already.
        }
    }

    private sealed record Stopped(long Committed, Stopwatch Clock);

    /// <summary>The baseline's reaction to a membership change: stop the job (it ends at its next step boundary) before the change.</summary>
    private static async Task<Stopped> StopForRestart(ElasticClient client, string jobId)
    {
        var clock = Stopwatch.StartNew();
        await client.CancelAsync(jobId);
        JobStatus status;
        while (!(status = await client.GetStatusAsync(jobId)).State.IsTerminal()) await Task.Delay(10);
        return new Stopped(status.CommittedStep, clock);
    }

    /// <summary>Seconds from the stop until a step after <paramref name="step"/> commits; null if the next change came first.</summary>
    private static async Task<double?> FirstStepAfter(ElasticClient client, string jobId, long step, Stopwatch clock, CancellationToken nextChange)
    {
        try
        {
            while ((await client.GetStatusAsync(jobId, nextChange)).CommittedStep <= step) await Task.Delay(10, nextChange);
            return clock.Elapsed.TotalSeconds;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Seconds from a kill until the job re-planned and committed a step under the new plan; 0 when it did not need to (no replica there).</summary>
    private static async Task<double> TrainingAgain(ElasticClient client, string jobId, int replansBefore)
    {
        var clock = Stopwatch.StartNew();
        long? committedAtReplan = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var status = await client.GetStatusAsync(jobId);
            if (status.State.IsTerminal()) return 0;
            if (committedAtReplan is null && status.Replans > replansBefore) committedAtReplan = status.CommittedStep;
            if (committedAtReplan is { } c && status.CommittedStep > c) return clock.Elapsed.TotalSeconds;
            if (committedAtReplan is null && clock.Elapsed > TimeSpan.FromSeconds(5)) return 0;
            await Task.Delay(10);
        }
        return 0;
    }

    internal sealed record Result(Mode Mode, double Ettr, double Goodput, int Kept, long Lost, int Changes, List<double> Pauses, List<double> Recoveries)
    {
        private string Name => Mode switch
        {
            Mode.ElasticWithNotice => "elastic, 30 s notice (scaled)",
            Mode.ElasticNoNotice => "elastic, no notice (kills)",
            _ => "checkpoint-restart baseline",
        };

        private static string Median(List<double> values) => values.Count == 0 ? "-" : Statistics.Median(values).ToString("F2", Inv);

        private static string P90(List<double> values) => values.Count == 0 ? "-" : values.Order().ElementAt((int)Math.Min(values.Count - 1, Math.Ceiling(values.Count * 0.9) - 1)).ToString("F2", Inv);

        public string Row() => string.Create(Inv, $"| {Name} | {Ettr:F2} | {Goodput:F1} | {Kept} | {Lost} | {Changes} | {Median(Pauses)} | {P90(Pauses)} | {Median(Recoveries)} |");

        public string Line() => string.Create(Inv, $"{Name}: ETTR {Ettr:F2}, goodput {Goodput:F1}, {Kept} steps kept, {Lost} lost, {Changes} changes, median pause {Median(Pauses)} s");
    }

    [GeneratedRegex(@"paused ([\d.]+) s")]
    private static partial Regex Paused();

    [GeneratedRegex(@"(\d+) committed step\(s\) lost")]
    private static partial Regex Lost();
}
