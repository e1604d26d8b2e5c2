using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Units.Replicas;

namespace Elastic.Tests.Cluster;

/// <summary>A step that fails on every new plan (here a collective that fails the same way each time) ends the job after a bounded number of re-plans, with its error.</summary>
public sealed class EndlessReplanTests
{
    [Fact]
    public async Task A_step_that_fails_on_every_new_plan_fails_the_job_after_five_tries_instead_of_replanning_forever()
    {
        var fault = new CollectiveFailsAt(step: 4);
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 2, silo: s => s.AddIncomingGrainCallFilter(fault));
        var jobId = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 20) with { Devices = new DeviceSpec { Min = 1, Max = 2 } });

        var status = await cluster.Finish(jobId);

        Assert.Equal(JobState.Failed, status.State);
        Assert.Equal(3, status.CommittedStep);
        Assert.Contains("step 4 failed 5 times in a row, each time on a new plan", status.Error);
        Assert.Contains("CollectiveException: injected", status.Error);
        Assert.InRange(status.Replans, 4, 4 * 3);
    }

    /// <summary>Every unit's run of <paramref name="step"/> fails as a collective does when a peer breaks it.</summary>
    private sealed class CollectiveFailsAt(long step) : IIncomingGrainCallFilter
    {
        public Task Invoke(IIncomingGrainCallContext context) =>
            context.TargetContext.GrainInstance is ShardGroupGrain && context.InterfaceMethod.Name == nameof(ITrainingUnit.RunStep)
            && context.Request.GetArgument(0) is long s && s == step
                ? throw new UnitFailedException($"{UnitFailedException.CollectivePrefix} injected: rank 1 sent a frame of the wrong length")
                : context.Invoke();
    }
}
