using Elastic.Grains.Jobs;

namespace Elastic.Tests.Coordination;

/// <summary>
/// Calls to the cluster's singletons: an activation that could not read its state while the store was down is tried again
/// until it answers (found by the chaos soak, where it failed a job); other failures are not retried.
/// </summary>
public sealed class ClusterCallRetryTests
{
    private static OrleansException StateNotRead() =>
        new("Error from storage provider AzureTableGrainStorage.capacity during ReadStateAsync for grain capacity/default\nExc level 0: System.AggregateException: Retry failed after 4 tries.");

    [Fact]
    public async Task A_singleton_that_could_not_read_its_state_is_called_again_until_it_answers()
    {
        var calls = 0;
        var answer = await ClusterCallRetry.Pipeline.ExecuteAsync(_ => ++calls == 1 ? throw StateNotRead() : ValueTask.FromResult(42));

        Assert.Equal((42, 2), (answer, calls));
    }

    [Fact]
    public async Task Other_orleans_failures_are_not_retried()
    {
        var calls = 0;
        await Assert.ThrowsAsync<OrleansException>(async () =>
            await ClusterCallRetry.Pipeline.ExecuteAsync<int>(_ => { calls++; throw new OrleansException("Error from storage provider AzureTableGrainStorage.capacity during WriteStateAsync"); }));

        Assert.Equal(1, calls);
    }
}
