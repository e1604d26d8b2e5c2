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
}
