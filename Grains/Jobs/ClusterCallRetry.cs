using Polly;
using Polly.Retry;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Retries calls to the cluster's singleton grains (capacity) while the silo that hosted one is being replaced: the
/// call fails with the silo unavailable until membership moves the grain, then the next activation (which reloads
/// its persisted state) answers; bounded to about 10 s. An activation that could not read its state because the store
/// did not answer is retried for about two minutes (found by the chaos soak: the capacity grain's silo was killed
/// during a storage outage, and a job's call failed the job). Anything else is not retried.
/// </summary>
public static class ClusterCallRetry
{
    public static ResiliencePipeline Pipeline { get; } = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<OrleansException>(StateNotRead),
            MaxRetryAttempts = 16,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromSeconds(1),
            MaxDelay = TimeSpan.FromSeconds(8),
        })
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<SiloUnavailableException>().Handle<OrleansMessageRejectionException>().Handle<TimeoutException>(),
            MaxRetryAttempts = 10,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(2),
        })
        .Build();

    /// <summary>Orleans' failure of an activation whose storage provider could not read the grain's state.</summary>
    public static bool StateNotRead(OrleansException e) =>
        e.Message.StartsWith("Error from storage provider", StringComparison.Ordinal) && e.Message.Contains("during ReadStateAsync", StringComparison.Ordinal);

    /// <summary>
    /// Runs <paramref name="call"/> through <see cref="Pipeline"/> from inside a grain: every attempt continues on the grain's
    /// scheduler (Polly's default would resume retries on the thread pool, where a grain may not make calls).
    /// </summary>
    public static async Task<T> OnGrainContext<T>(Func<Task<T>> call)
    {
        var context = ResilienceContextPool.Shared.Get(continueOnCapturedContext: true);
        try
        {
            return await Pipeline.ExecuteAsync(static async (_, call) => await call(), context, call);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }
}
