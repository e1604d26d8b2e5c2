using Polly;
using Polly.Retry;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Retries calls to the cluster's singleton grains (capacity) while the silo that hosted one is being replaced: the
/// call fails with the silo unavailable until membership moves the grain, then the next activation (which reloads
/// its persisted state) answers. Bounded to about 10 s; anything else is not retried.
/// </summary>
internal static class ClusterCallRetry
{
    public static ResiliencePipeline Pipeline { get; } = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<SiloUnavailableException>().Handle<OrleansMessageRejectionException>().Handle<TimeoutException>(),
            MaxRetryAttempts = 10,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(2),
        })
        .Build();

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
