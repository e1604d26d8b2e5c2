using System.Collections.Concurrent;
using System.Diagnostics;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Client;
using Elastic.Data;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks.Chaos;

/// <param name="Window">How long faults are thrown; jobs then finish with every fault healed.</param>
/// <param name="Soak">Silo 0 is never taken down, so one process lives the whole run for the leak trends.</param>
public sealed record ChaosOptions(TimeSpan Window, int Seed, string Folder, string Root, Action<string> Log)
{
    public int Silos { get; init; } = 4;
    public int DevicesPerSilo { get; init; } = 2;
    public int JobSlots { get; init; } = 3;
    public int Steps { get; init; } = 150;
    public bool Soak { get; init; }
    /// <summary>The kinds of fault thrown (default: all).</summary>
    public IReadOnlySet<FaultKind>? Kinds { get; init; }
    public TimeSpan SampleEvery { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How long jobs may take to finish once the window is over.</summary>
    public TimeSpan FinishLimit { get; init; } = TimeSpan.FromMinutes(8);
}

public sealed record ChaosResult(IReadOnlyList<AppliedFault> Applied, IReadOnlyList<Violation> Violations, ChaosFigures Figures,
    IReadOnlyList<Trend> Trends, TimeSpan Elapsed);

/// <summary>
/// One chaos run: starts a <see cref="ChaosCluster"/>, keeps several jobs of different priorities running through the API
/// (a new one as each ends) while the seeded <see cref="FaultSchedule"/> is applied, watches every job's history, heals
/// everything when the window ends, lets the jobs finish, trains each spec fault-free on one device, and checks the
/// histories against those runs (<see cref="HistoryChecker"/>). The run's own failures (a duplicate submission that made a
/// second job) are violations too.
/// </summary>
public sealed class ChaosRun
{
    private readonly ChaosOptions _options;
    private readonly Stopwatch _clock = new();
    private readonly ConcurrentQueue<JobHistory> _histories = new();
    private readonly ConcurrentQueue<Violation> _violations = new();
    private readonly ConcurrentQueue<AppliedFault> _applied = new();
    /// <summary>Checkpoints the run damaged: never damaged again (a second flip of the same byte would repair it).</summary>
    private readonly ConcurrentDictionary<string, bool> _damaged = new();
    private readonly ConcurrentQueue<ResourceSample> _samples = new();
    private readonly JobSlot[] _slots;
    private ChaosCluster _cluster = null!;
    private TimeSpan _windowEnd;

    private ChaosRun(ChaosOptions options)
    {
        _options = options;
        _slots = Enumerable.Range(0, options.JobSlots).Select(i => new JobSlot(i)).ToArray();
    }

    public static Task<ChaosResult> RunAsync(ChaosOptions options) => new ChaosRun(options).Run();

    private sealed class JobSlot(int index)
    {
        public int Index { get; } = index;
        public volatile JobHistory? Current;
        public string Key = "";
        /// <summary>The run cancelled the job to resume it: its Cancelled state is not its end.</summary>
        public volatile bool Resuming;
    }

    /// <summary>A job small enough for a step in milliseconds; four seeds per slot, so references repeat.</summary>
    public static TrainingSpec Spec(int slot, int wave, int steps) => new()
    {
        Name = $"chaos-{slot}-{wave}",
        Seed = (ulong)(1000 + 10 * slot + wave % 4),
        Steps = steps,
        Priority = Math.Max(0, 2 - slot),
        Model = new ModelSpec { Layers = 2, DModel = 32, Heads = 4, Vocab = 256, Context = 32, Dropout = 0.1 },
        Batch = new BatchSpec { Global = 16, Micro = 2 },
        Optimizer = new OptimizerSpec { Lr = 3e-3, MinLr = 3e-4, WarmupSteps = 2 },
        Eval = new EvalSpec { Every = 0, Batches = 2 },
        Devices = new DeviceSpec { Min = 2, Max = 8 },
        Checkpoint = new CheckpointSpec { EverySteps = 10, KeepLast = 3 },
    };

    private async Task<ChaosResult> Run()
    {
        var faults = FaultSchedule.Make(_options.Seed, _options.Window, _options.Silos, _options.JobSlots, settle: TimeSpan.FromSeconds(10))
            .Where(f => !(_options.Soak && f.TakesSiloDown && f.Target == 0) && _options.Kinds?.Contains(f.Kind) != false).ToList();
        _clock.Start();
        Directory.CreateDirectory(_options.Folder);
        await using (_cluster = await ChaosCluster.StartAsync(_options.Root, _options.Folder, _options.Silos, _options.DevicesPerSilo, _options.Log, _clock))
        {
            var devices = _options.Silos * _options.DevicesPerSilo;
            await Retry(async c => (await _cluster.Client.GetInventoryAsync(c)).Sum(s => s.Devices) >= devices ? true : throw new TimeoutException($"fewer than {devices} devices"),
                TimeSpan.FromMinutes(3), "the cluster forming");
            Log($"cluster formed: {_options.Silos} silos x {_options.DevicesPerSilo} devices; {faults.Count} faults over {_options.Window.TotalMinutes:F1} min");
            var started = _clock.Elapsed;
            _windowEnd = started + _options.Window;
            using var sampling = new CancellationTokenSource();
            var sampler = Sample(sampling.Token);
            var jobs = _slots.Select(RunSlot).ToList();
            foreach (var fault in faults)
            {
                var wait = started + fault.At - _clock.Elapsed;
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
                _ = Apply(fault);
            }
            await Task.Delay(_windowEnd - _clock.Elapsed is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
            Heal();
            Log("window over: every fault healed; the jobs finish");
            await Task.WhenAll(jobs);
            await sampling.CancelAsync();
            await sampler;
        }
        Log("training each spec fault-free on one device");
        var references = await References(_histories.Select(h => h.Spec).DistinctBy(s => s.Seed).ToList());
        var applied = _applied.OrderBy(a => a.At).ToList();
        var (violations, figures) = HistoryChecker.Check(_histories.ToList(), spec => references[spec.Seed], applied);
        // What a violation needs to be understood: the job's events and the steps it was seen at, beside the silos' logs.
        foreach (var job in _histories.Where(h => violations.Any(v => v.JobId == h.JobId)))
            await File.WriteAllLinesAsync(Path.Combine(_options.Folder, $"{job.JobId}.history.txt"), job.Events.Values.Select(e => e.ToString())
                .Concat(job.Observations.Select(o => $"{o.At.TotalSeconds,8:F1} s  {o.State} generation {o.Generation} committed {o.Committed}")));
        return new ChaosResult(applied, [.. _violations, .. violations], figures, Trends(), _clock.Elapsed);
    }

    /// <summary>Keeps a job in the slot until the window ends: submit, watch to its end, submit the next.</summary>
    private async Task RunSlot(JobSlot slot)
    {
        for (var wave = 0; _clock.Elapsed < _windowEnd; wave++)
        {
            var spec = Spec(slot.Index, wave, _options.Steps);
            var key = $"chaos-{_options.Seed}-{slot.Index}-{wave}";
            var id = await Retry(c => _cluster.Client.SubmitAsync(spec, key, c), TimeSpan.FromMinutes(2), $"submitting {spec.Name}");
            var history = new JobHistory(id, spec);
            _histories.Enqueue(history);
            (slot.Key, slot.Current) = (key, history);
            Log($"{spec.Name}: job {id} (priority {spec.Priority})");
            await Watch(slot, history);
        }
    }

    /// <summary>Records every progress of the job until it ends (reconnecting through API restarts), then its status and report.</summary>
    private async Task Watch(JobSlot slot, JobHistory history)
    {
        using var deadline = new CancellationTokenSource(_windowEnd - _clock.Elapsed + _options.FinishLimit);
        var ended = false;
        while (!ended && !deadline.IsCancellationRequested)
        {
            try
            {
                await foreach (var progress in _cluster.Client.WatchAsync(history.JobId, deadline.Token))
                {
                    history.Record(_clock.Elapsed, progress);
                    if (progress.Status.State.IsTerminal() && !slot.Resuming)
                    {
                        ended = true;
                        break;
                    }
                }
            }
            catch (Exception e) when (!deadline.IsCancellationRequested && e is not OperationCanceledException || e is HttpRequestException)
            {
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
            }
            if (!ended) await Task.Delay(500, CancellationToken.None);
        }
        history.Final = await Retry(c => _cluster.Client.GetStatusAsync(history.JobId, c), TimeSpan.FromMinutes(2), $"the status of {history.JobId}");
        if (history.Final.State == JobState.Completed)
            history.Report = await Retry(c => _cluster.Client.GetReportAsync(history.JobId, c), TimeSpan.FromMinutes(2), $"the report of {history.JobId}");
        else Log($"{history.Spec.Name}: job {history.JobId} ended {history.Final.State}: {history.Final.Error}");
    }

    private async Task Apply(Fault fault)
    {
        var at = _clock.Elapsed;
        // Taken before the fault: the supervisor may have started the silo again on other ports by the time it is over.
        var hit = fault.Kind is FaultKind.Kill or FaultKind.Pause && fault.Target >= 0 && fault.Target < _cluster.Silos.Count && _cluster.Silos[fault.Target].Running
            ? $"127.0.0.1:{_cluster.Silos[fault.Target].SiloPort}"
            : null;
        try
        {
            var applied = await Inject(fault);
            Log($"{at.TotalSeconds,7:F1} s  {fault.Kind}{(fault.Target >= 0 ? $" #{fault.Target}" : "")}: {applied}");
            if (applied.StartsWith("skipped", StringComparison.Ordinal)) return;
            _applied.Enqueue(new AppliedFault(at, fault, hit));
        }
        catch (Exception e)
        {
            Log($"{at.TotalSeconds,7:F1} s  {fault.Kind}: injecting it failed: {e.Message}");
        }
    }

    /// <summary>Does what the fault says; returns what was done (or why it was skipped).</summary>
    private async Task<string> Inject(Fault fault)
    {
        var silo = fault.Target >= 0 && fault.Target < _cluster.Silos.Count ? _cluster.Silos[fault.Target] : null;
        switch (fault.Kind)
        {
            case FaultKind.Kill or FaultKind.Drain or FaultKind.EvictionNotice or FaultKind.Pause when silo is not { Running: true }:
                return $"skipped: {silo?.Name} is not running";
            case FaultKind.Kill:
                silo!.DownUntil = _clock.Elapsed + fault.Duration;
                _cluster.Signal(silo, "KILL");
                return $"kill -9 {silo.Name}, back in {fault.Duration.TotalSeconds:F0} s";
            case FaultKind.Drain:
                silo!.DownUntil = _clock.Elapsed + fault.Duration;
                _cluster.Signal(silo, "TERM");
                return $"SIGTERM {silo.Name}";
            case FaultKind.EvictionNotice:
                silo!.DownUntil = _clock.Elapsed + fault.Duration;
                silo.Events.Preempt(silo.Name);
                return $"Preempt {silo.Name} in its Scheduled Events";
            case FaultKind.Pause:
                silo!.DownUntil = _clock.Elapsed + fault.Duration + TimeSpan.FromSeconds(2);
                _cluster.Signal(silo, "STOP");
                await Task.Delay(fault.Duration);
                _cluster.Signal(silo, "CONT");
                return $"SIGSTOP {silo.Name} for {fault.Duration.TotalSeconds:F0} s, then SIGCONT";
            case FaultKind.StorageUnavailable or FaultKind.StorageLatency or FaultKind.StorageResets or FaultKind.StorageCutOff:
                var mode = fault.Kind switch
                {
                    FaultKind.StorageUnavailable => ProxyMode.Unavailable,
                    FaultKind.StorageLatency => ProxyMode.Latency,
                    FaultKind.StorageResets => ProxyMode.Reset,
                    _ => ProxyMode.Stall,
                };
                _cluster.SetStorage(mode, fault.Target, TimeSpan.FromMilliseconds(150));
                await Task.Delay(fault.Duration);
                _cluster.SetStorage(ProxyMode.Forward, fault.Target);
                return $"storage {mode} for {(silo is null ? "every silo" : silo.Name)}, {fault.Duration.TotalSeconds:F0} s";
            case FaultKind.DataPlaneReset or FaultKind.DataPlaneStall:
                if (silo?.DataPlane is not { } proxy) return "skipped: no data plane";
                proxy.Set(fault.Kind == FaultKind.DataPlaneReset ? ProxyMode.Reset : ProxyMode.Stall);
                await Task.Delay(fault.Kind == FaultKind.DataPlaneReset ? TimeSpan.FromMilliseconds(200) : fault.Duration);
                proxy.Set(ProxyMode.Forward);
                return $"{silo.Name}'s data plane {(fault.Kind == FaultKind.DataPlaneReset ? "reset" : $"stalled {fault.Duration.TotalSeconds:F0} s")}";
            case FaultKind.ApiRestart:
                await _cluster.RestartApi();
                return "the API process restarted";
            case FaultKind.DuplicateSubmission:
                return await Duplicate(_slots[fault.Target]);
            case FaultKind.DamagedCheckpoint:
                // The target slot's job, else the next slot's that has a checkpoint to damage.
                foreach (var slot in _slots.Skip(fault.Target).Concat(_slots.Take(fault.Target)))
                    if (await DamageAndResume(slot) is var done && !done.StartsWith("skipped", StringComparison.Ordinal)) return done;
                return "skipped: no running job has a checkpoint";
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault.Kind, "not a fault kind");
        }
    }

    private async Task<string> Duplicate(JobSlot slot)
    {
        if (slot.Current is not { } job) return "skipped: no job yet";
        var again = await Retry(c => _cluster.Client.SubmitAsync(job.Spec, slot.Key, c), TimeSpan.FromMinutes(1), "a duplicate submission");
        if (again != job.JobId)
            _violations.Enqueue(new Violation("one idempotency key, one job", job.JobId, null, $"submitting again with key {slot.Key} made job {again}"));
        return $"{job.Spec.Name} submitted again with its key: {(again == job.JobId ? "the same job" : $"ANOTHER job {again}")}";
    }

    /// <summary>Damages a chunk of the job's newest checkpoint, then cancels and resumes it: it must fall back to an older one.</summary>
    private async Task<string> DamageAndResume(JobSlot slot)
    {
        if (slot.Current is not { } job) return "skipped: no job yet";
        var status = await Retry(c => _cluster.Client.GetStatusAsync(job.JobId, c), TimeSpan.FromMinutes(1), "the job's status");
        if (status.State != JobState.Running || status.LastCheckpointStep is null) return $"skipped: {job.Spec.Name} is {status.State} with no checkpoint";
        var store = AzureBlobStore.Connect(_cluster.Storage, "checkpoints");
        var reader = new CheckpointReader(store, CheckpointLayout.ForJob(job.JobId));
        if (await reader.FindAsync(null) is not { } newest) return "skipped: no committed checkpoint";
        if (!_damaged.TryAdd(newest.Name, true)) return $"skipped: {job.Spec.Name}'s newest checkpoint is damaged already";
        // The fault is a damaged newest checkpoint with an older one to fall back to; with none, failing is the job's right answer.
        if ((await reader.CommittedAsync()).Count(c => c.Step < newest.Manifest.Step) == 0) return $"skipped: {job.Spec.Name} has no older checkpoint to fall back to";
        var chunk = newest.Manifest.Chunks[newest.Manifest.Chunks.Count / 2];
        var blob = await store.GetVersionedAsync(chunk.File) ?? throw new InvalidOperationException($"{chunk.File} is missing");
        blob.Content[chunk.ByteOffset] ^= 0x5A;
        if (!await store.TrySwapAsync(chunk.File, blob.Content, blob.Version)) return "skipped: the chunk changed meanwhile";
        slot.Resuming = true;
        try
        {
            await Retry(c => _cluster.Client.CancelAsync(job.JobId, c), TimeSpan.FromMinutes(1), "cancelling");
            var cancelled = await Retry(async c => await _cluster.Client.GetStatusAsync(job.JobId, c) is { } s && s.State.IsTerminal() ? s : throw new TimeoutException("not ended yet"),
                TimeSpan.FromMinutes(2), "the cancel");
            if (cancelled.State != JobState.Cancelled) return $"skipped: {job.Spec.Name} ended {cancelled.State} first";
            await Retry(c => _cluster.Client.ResumeAsync(job.JobId, null, c), TimeSpan.FromMinutes(1), "resuming");
            lock (job) job.Resumes.Add(_clock.Elapsed);
            return $"{job.Spec.Name}: damaged {chunk.File} of the checkpoint of step {newest.Manifest.Step}, cancelled at step {cancelled.CommittedStep} and resumed";
        }
        finally
        {
            slot.Resuming = false;
        }
    }

    private void Heal()
    {
        _cluster.SetStorage(ProxyMode.Forward);
        foreach (var silo in _cluster.Silos)
        {
            silo.DataPlane?.Set(ProxyMode.Forward);
            silo.DownUntil = TimeSpan.Zero;
            _cluster.Signal(silo, "CONT");
        }
    }

    private async Task Sample(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            foreach (var (silo, incarnation, pid) in _cluster.RunningSilos())
                if (ResourceSampler.Sample(_clock.Elapsed, silo, incarnation, pid) is { } sample) _samples.Enqueue(sample);
            await Task.Delay(_options.SampleEvery, stop).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    /// <summary>Per silo process that lived at least ten minutes: a trend of each resource after a two-minute warm-up.</summary>
    private List<Trend> Trends()
    {
        var trends = new List<Trend>();
        foreach (var series in _samples.GroupBy(s => (s.Silo, s.Incarnation)))
        {
            var first = series.Min(s => s.At);
            var warm = series.Where(s => s.At - first >= TimeSpan.FromMinutes(2)).ToList();
            if (warm.Count < 20 || warm[^1].At - first < TimeSpan.FromMinutes(10)) continue;
            var name = $"{series.Key.Silo}#{series.Key.Incarnation}";
            trends.Add(Trend.Fit("memory", name, warm.Select(s => (s.At.TotalHours, s.MemoryMiB)).ToList()));
            trends.Add(Trend.Fit("threads", name, warm.Select(s => (s.At.TotalHours, (double)s.Threads)).ToList()));
            trends.Add(Trend.Fit("handles", name, warm.Select(s => (s.At.TotalHours, (double)s.Handles)).ToList()));
            trends.Add(Trend.Fit("sockets", name, warm.Select(s => (s.At.TotalHours, (double)s.Sockets)).ToList()));
        }
        return trends;
    }

    /// <summary>Each distinct spec trained fault-free by the engine on one device: its losses and digest.</summary>
    private static async Task<Dictionary<ulong, Reference>> References(IReadOnlyList<TrainingSpec> specs)
    {
        var references = new Dictionary<ulong, Reference>();
        foreach (var spec in specs)
            references[spec.Seed] = await DeviceWorker.RunOnce("chaos-reference", 1, () =>
            {
                using var trainer = new Trainer(spec, TokenCorpus.Load(spec));
                var losses = Enumerable.Range(1, spec.Steps).Select(s => trainer.Step(s).Loss).ToList();
                return new Reference(losses, trainer.ParameterDigest());
            });
        return references;
    }

    /// <summary>Calls until it answers, for at most <paramref name="limit"/>: the cluster and the API come and go in a chaos run.</summary>
    private static async Task<T> Retry<T>(Func<CancellationToken, Task<T>> call, TimeSpan limit, string what)
    {
        using var timeout = new CancellationTokenSource(limit);
        Exception? last = null;
        while (!timeout.IsCancellationRequested)
        {
            try
            {
                return await call(timeout.Token);
            }
            catch (Exception e) when (e is not (JobSpecRejectedException or IdempotencyConflictException or ElasticAccessDeniedException) && !timeout.IsCancellationRequested)
            {
                last = e;
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                break;
            }
            await Task.Delay(500, CancellationToken.None);
        }
        throw new TimeoutException($"{what}: no answer within {limit.TotalSeconds:F0} s ({last?.Message})", last);
    }

    private void Log(string message) => _options.Log(message);
}
