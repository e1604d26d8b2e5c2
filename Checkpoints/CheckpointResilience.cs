using Polly;
using Polly.Retry;

namespace Elastic.Checkpoints;

/// <summary>
/// Application-level resilience for checkpoint operations. The Azure SDK already retries every HTTP request
/// (transport errors, 5xx, throttling), so these pipelines never retry a storage error again; that would
/// multiply the SDK's attempts. They retry only what the SDK cannot see: a lost compare-and-swap on
/// <c>latest</c> (another writer moved it between our read and our swap) and a block whose bytes fail their
/// digest (a torn read is retried; a torn blob fails every time and is then reported as corrupt). Each
/// operation as a whole is bounded by a timeout.
/// </summary>
public static class CheckpointResilience
{
    /// <summary>Moving <c>latest</c>: re-read and swap again after losing a race, within a bounded time.</summary>
    public static ResiliencePipeline MoveLatest { get; } = new ResiliencePipelineBuilder()
        .AddTimeout(TimeSpan.FromMinutes(2))
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<LatestContendedException>(),
            MaxRetryAttempts = 20,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(5),
            MaxDelay = TimeSpan.FromMilliseconds(500),
            UseJitter = true,
        })
        .Build();

    /// <summary>One ranged read and its verification: a digest mismatch is read again twice before the chunk is declared corrupt.</summary>
    public static ResiliencePipeline FetchRange { get; } = new ResiliencePipelineBuilder()
        .AddTimeout(TimeSpan.FromMinutes(5))
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<BlockDigestMismatchException>(),
            MaxRetryAttempts = 2,
            BackoffType = DelayBackoffType.Constant,
            Delay = TimeSpan.FromMilliseconds(50),
        })
        .Build();
}

/// <summary><c>latest</c> changed between reading it and swapping it.</summary>
internal sealed class LatestContendedException() : Exception("latest moved during the swap");

/// <summary>Bytes read from a chunk do not match a block digest; the message names chunk, file and block.</summary>
internal sealed class BlockDigestMismatchException(string message) : Exception(message);
