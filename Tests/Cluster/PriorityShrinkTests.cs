using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Units.Replicas;

namespace Elastic.Tests.Cluster;

/// <summary>
/// Elastic fair share on a real cluster: a higher-priority job submitted to a full cluster makes the running lower one shrink
/// at a step boundary (0 steps lost) instead of waiting or killing it, and so does a job of the same priority, which takes
/// its share (half of the 4 devices); the running one grows back when the other ends; both end with the digests of their
/// one-device runs, and both tell the story in their events.
/// </summary>
public sealed class PriorityShrinkTests
{
    [Theory]
    [InlineData(5)]
    [InlineData(0)]
    public async Task A_job_of_higher_or_equal_priority_on_a_full_cluster_shrinks_the_running_one_with_no_step_lost_and_both_end_with_their_one_device_digests(int priority)
    {
        var low = TestSpecs.Tiny(steps: 200, global: 16, micro: 2) with { Name = "low", Devices = new DeviceSpec { Min = 1, Max = 4 } };
        var high = TestSpecs.Tiny(steps: 12, global: 16, micro: 2, seed: 99) with { Name = "high", Priority = priority, Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var references = await Task.WhenAll(TestSpecs.ReferenceDigest(low), TestSpecs.ReferenceDigest(high));
        // The low job's steps are slowed until it has grown back, so the story fits in its 200 steps on any machine.
        var slow = new SlowSteps("low-");
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 4, silo: s => s.AddIncomingGrainCallFilter(slow));

        var lowId = await cluster.Client.SubmitAsync(low);
        var running = await cluster.Until(lowId, s => s.CommittedStep >= 3);
        Assert.Equal(4, running.Plan!.DeviceCount);
        var highId = await cluster.Client.SubmitAsync(high);
        var highStatus = await cluster.Finish(highId);
        var grown = await cluster.Until(lowId, s => s.Plan!.DeviceCount == 4 && s.Plan.Generation > running.Plan.Generation + 1);
        slow.Off();
        var lowStatus = await cluster.Finish(lowId);

        var lowEvents = await cluster.Events(lowId);
        var highEvents = await cluster.Events(highId);
        var log = string.Join("\n", lowEvents.Concat(highEvents));
        Assert.True(lowStatus.State == JobState.Completed && highStatus.State == JobState.Completed, log);
        Assert.True(references[0] == lowStatus.FinalParameterDigest, log);
        Assert.True(references[1] == highStatus.FinalParameterDigest, log);
        Assert.Equal(2, highStatus.Plan!.DeviceCount);

        // The low job: shrank for the high one (keeping its state on the devices it kept), then grew back; no step lost.
        var moves = lowEvents.Where(e => e.Kind == JobEventKinds.Replanned).ToList();
        Assert.True(moves.Count == 2, log);
        Assert.StartsWith($"fair share: yields 2 device(s) to job {highId} (priority {priority}): 4 -> 2 device(s)", moves[0].Message);
        Assert.Contains("state kept on their devices", moves[0].Message);
        Assert.StartsWith("join:", moves[1].Message);
        Assert.All(moves, m => Assert.Contains("0 committed step(s) lost", m.Message));
        var report = await cluster.Client.GetReportAsync(lowId);
        Assert.Equal(Enumerable.Range(1, low.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
        // The high job: queued first in line, saying who makes room for it.
        Assert.Contains(highEvents, e => e.Kind == JobEventKinds.Waiting && e.Message.Contains($"number 1 in the queue (priority {priority})")
            && e.Message.Contains($"job {lowId} (priority 0) shrinks from 4 to 2 device(s) to make room"));
        Assert.True(grown.CommittedStep < low.Steps, log);
        Assert.Empty(await cluster.Client.GetScheduleAsync());
    }

    /// <summary>Delays every step of the jobs whose ids start with <paramref name="prefix"/> until <see cref="Off"/>.</summary>
    private sealed class SlowSteps(string prefix) : IIncomingGrainCallFilter
    {
        private volatile bool _on = true;

        public void Off() => _on = false;

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            if (_on && context.TargetContext.GrainInstance is ReplicaGrain && context.InterfaceMethod.Name == nameof(ITrainingUnit.RunStep)
                && context.TargetContext.GrainId.Key.ToString()!.StartsWith(prefix, StringComparison.Ordinal))
                await Task.Delay(200);
            await context.Invoke();
        }
    }
}
