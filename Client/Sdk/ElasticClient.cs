using System.Runtime.CompilerServices;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Orleans.Runtime.Messaging;
using Polly;
using Polly.Retry;

namespace Elastic.Client;

/// <summary>
/// Submits, watches and controls training jobs on an Elastic cluster. Every failure surfaces as an
/// <see cref="ElasticException"/> subtype with a message fit for a user.
/// </summary>
public sealed class ElasticClient(IGrainFactory grains) : IElasticClient
{
    private static readonly TimeSpan LongPoll = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Submits a job. Submitting the same spec again under the same <paramref name="idempotencyKey"/> returns the
    /// same job id (safe to retry); another spec under that key is refused. Without a key every call creates a job.
    /// </summary>
    public Task<string> SubmitAsync(TrainingSpec spec, string? idempotencyKey = null, CancellationToken cancellation = default) =>
        SubmitAsync(spec, idempotencyKey, Tenants.Default, cancellation);

    /// <summary>Submits a job for <paramref name="tenant"/>: the Orleans client is trusted, it submits for any tenant.</summary>
    public Task<string> SubmitAsync(TrainingSpec spec, string? idempotencyKey, string tenant, CancellationToken cancellation = default)
    {
        // Generated once, so that a retry after a lost reply finds the job the first attempt created.
        var key = idempotencyKey ?? Guid.NewGuid().ToString("N");
        return Call(async () =>
        {
            var result = await Registry.Submit(spec, key, tenant).WaitAsync(cancellation);
            if (result.Errors.Count > 0) throw new JobSpecRejectedException(result.Errors);
            if (result.IdempotencyConflict is { } conflict) throw new IdempotencyConflictException(conflict);
            return result.JobId!;
        });
    }

    public Task<JobStatus> GetStatusAsync(string jobId, CancellationToken cancellation = default) =>
        Call(async () => await Job(jobId).GetStatus().WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId));

    /// <summary>Stops the job at its next step boundary.</summary>
    /// <exception cref="JobStateException">The job had already ended: there is nothing to cancel.</exception>
    public Task<JobStatus> CancelAsync(string jobId, CancellationToken cancellation = default) =>
        Call(async () => StillRunning(await Job(jobId).Cancel().WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId), "cancel"));

    /// <summary>Exports a checkpoint (default: the latest) as model.safetensors + config.json into a directory on the silo's filesystem.</summary>
    public Task<string> ExportAsync(string jobId, string? directory, long? step = null, CancellationToken cancellation = default) =>
        directory is null
            ? throw new ElasticException("exporting through the cluster connection needs a directory on the silos' filesystem")
            : Call(() => Job(jobId).Export(step, directory).WaitAsync(cancellation));

    /// <summary>Asks a running job to checkpoint at its next step boundary.</summary>
    /// <exception cref="JobStateException">The job had already ended: no checkpoint will be taken.</exception>
    public Task<JobStatus> CheckpointAsync(string jobId, CancellationToken cancellation = default) =>
        Call(async () => StillRunning(await Job(jobId).RequestCheckpoint().WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId), "checkpoint"));

    /// <summary>A request for a running job that reached one that had ended did nothing: say so instead of returning as if it will act.</summary>
    private static JobStatus StillRunning(JobStatus status, string request) => status.State.IsTerminal()
        ? throw new JobStateException($"job {status.JobId} already {status.State.ToString().ToLowerInvariant()}: nothing to {request}")
        : status;

    /// <summary>
    /// Moves a running job to the layout <paramref name="plan"/> (e.g. "dp=1,tp=4") at its next step boundary, its state moved
    /// from the units' memories; the result stays the same bits. The job's events say when it moved and how long it paused.
    /// </summary>
    /// <exception cref="LayoutRejectedException">The layout cannot run (every reason named); nothing changed.</exception>
    public Task<JobStatus> ReplanAsync(string jobId, string plan, CancellationToken cancellation = default) =>
        Call(async () =>
        {
            try
            {
                return await Job(jobId).ChangeLayout(plan).WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId);
            }
            catch (ArgumentException e)
            {
                throw new LayoutRejectedException(e.Message);
            }
        });

    /// <summary>Continues a failed or cancelled job from its latest checkpoint (or the one of <paramref name="step"/>), on the devices free now.</summary>
    public Task<JobStatus> ResumeAsync(string jobId, long? step = null, CancellationToken cancellation = default) =>
        Call(async () => await Job(jobId).Resume(step).WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId));

    public Task<IReadOnlyList<JobStatus>> ListAsync(CancellationToken cancellation = default) =>
        Call(() => Registry.List().WaitAsync(cancellation));

    /// <summary>The cluster's silos and their devices.</summary>
    public Task<IReadOnlyList<SiloInventory>> GetInventoryAsync(CancellationToken cancellation = default) =>
        Call(() => grains.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey).GetInventory().WaitAsync(cancellation));

    public Task<IReadOnlyList<JobShare>> GetScheduleAsync(CancellationToken cancellation = default) =>
        Call(() => grains.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey).GetSchedule().WaitAsync(cancellation));

    /// <summary>Waits until the cluster offers at least <paramref name="devices"/> devices (silos announce theirs as they join).</summary>
    /// <exception cref="ClusterUnavailableException">They did not appear within <paramref name="timeout"/>.</exception>
    public async Task<IReadOnlyList<SiloInventory>> WaitForDevicesAsync(int devices, TimeSpan timeout, CancellationToken cancellation = default)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var inventory = await GetInventoryAsync(cancellation);
            if (inventory.Sum(s => s.Devices) >= devices) return inventory;
            if (DateTimeOffset.UtcNow > deadline)
                throw new ClusterUnavailableException($"the cluster offers {inventory.Sum(s => s.Devices)} device(s) on {inventory.Count} silo(s); {devices} did not appear within {timeout.TotalSeconds:0} s");
            await Task.Delay(100, cancellation);
        }
    }

    /// <summary>The run report (the same shape as a local run's).</summary>
    public Task<RunReport> GetReportAsync(string jobId, CancellationToken cancellation = default) =>
        Call(async () => await Job(jobId).GetReport().WaitAsync(cancellation) ?? throw new JobNotFoundException(jobId));

    /// <summary>Progress as it happens: committed steps, held-out losses, plan changes and other events, until the job ends.</summary>
    public IAsyncEnumerable<JobProgress> WatchAsync(string jobId, CancellationToken cancellation = default) => WatchAsync(jobId, 0, 0, cancellation);

    /// <summary>Progress after step <paramref name="afterStep"/> and event <paramref name="afterEvent"/> (a watcher that reconnects), until the job ends.</summary>
    public async IAsyncEnumerable<JobProgress> WatchAsync(string jobId, long afterStep, long afterEvent, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        while (true)
        {
            var progress = await Call(async () => await Job(jobId).WaitForProgress(afterStep, afterEvent, LongPoll).WaitAsync(cancellation)
                ?? throw new JobNotFoundException(jobId));
            if (progress.Steps.Count > 0) afterStep = progress.Steps[^1].Step;
            if (progress.Events.Count > 0) afterEvent = progress.Events[^1].Index;
            yield return progress;
            // An ended job's history may still come in pages.
            if (progress.Status.State.IsTerminal() && (progress.Steps.Count == 0 || afterStep >= progress.Status.CommittedStep)) yield break;
        }
    }

    /// <summary>Waits until the job ends and returns its final status.</summary>
    public async Task<JobStatus> WaitForCompletionAsync(string jobId, CancellationToken cancellation = default)
    {
        JobStatus? last = null;
        await foreach (var progress in WatchAsync(jobId, cancellation)) last = progress.Status;
        return last!;
    }

    private IJobRegistryGrain Registry => grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    private IJobGrain Job(string jobId) =>
        string.IsNullOrWhiteSpace(jobId) ? throw new JobNotFoundException(jobId) : grains.GetGrain<IJobGrain>(jobId);

    /// <summary>
    /// Calls that fail because a gateway or the silo of a grain went away are sent again (another gateway answers, the
    /// grain activates elsewhere) for about 15 s; every call is safe to repeat (submits carry their idempotency key).
    /// </summary>
    private static readonly ResiliencePipeline Transport = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransport),
            MaxRetryAttempts = 10,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(3),
        })
        .Build();

    /// <summary>
    /// Translates transport failures (after the retries) and a store the cluster could not reach into <see cref="ClusterUnavailableException"/>, and a grain's refusal
    /// to act in the job's current state (InvalidOperationException) into <see cref="JobStateException"/>; our own exceptions pass through.
    /// </summary>
    private static async Task<T> Call<T>(Func<Task<T>> call)
    {
        try
        {
            return await Transport.ExecuteAsync(async _ => await call());
        }
        catch (InvalidOperationException e)
        {
            throw new JobStateException(e.Message);
        }
        catch (StoreUnavailableException e)
        {
            throw new ClusterUnavailableException(e.Message, e);
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw new ClusterUnavailableException($"the cluster did not answer: {e.Message}", e);
        }
    }

    private static bool IsTransport(Exception e) =>
        e is SiloUnavailableException or ConnectionFailedException or OrleansMessageRejectionException or TimeoutException or GatewayTooBusyException;
}
