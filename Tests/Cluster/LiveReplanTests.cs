using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Units.Replicas;

namespace Elastic.Tests.Cluster;

/// <summary>
/// `elastic replan`: a running job moved to another layout at a step boundary, its state moved between the units'
/// memories (no checkpoint round-trip), ends with the bits of the uninterrupted one-device run; a layout that cannot run
/// is refused with nothing changed; a re-plan whose prepare fails is retried from the state still in memory, and one that
/// fails after a cancel leaves the job cancelled.
/// </summary>
public sealed class LiveReplanTests
{
    private static TrainingSpec Spec(int steps, int tensor) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Devices = new DeviceSpec { Min = 1, Max = 4 },
        Parallel = new ParallelSpec { Tensor = tensor },
        Checkpoint = new CheckpointSpec { EverySteps = 0 }, // no checkpoint to fall back to: state lost would show as steps lost
    };

    /// <summary>Job options for re-plan tests: short joins and polls, and no growth between the layouts asked for.</summary>
    internal static JobOptions Jobs => new()
    {
        CollectiveTimeout = TimeSpan.FromSeconds(20),
        JoinTimeout = TimeSpan.FromSeconds(3),
        CapacityPollInterval = TimeSpan.FromMilliseconds(200),
        MinDwell = TimeSpan.FromMinutes(10), // the layouts asked for stay: no growth in between
        JoinSettle = TimeSpan.FromMilliseconds(300),
    };

    [Fact]
    public async Task Replan_tp_2_to_4_to_1_mid_job_ends_with_the_uninterrupted_digest_and_loses_no_step()
    {
        var spec = Spec(60, tensor: 2);
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 4, jobs: Jobs);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 5);
        Assert.Equal((2, 2), (before.Plan!.Dp, before.Plan.Tp));

        // Refused: every reason with its numbers, and the job goes on as it was.
        var refused = await Assert.ThrowsAsync<LayoutRejectedException>(() => cluster.Client.ReplanAsync(jobId, "dp=1,tp=8"));
        Assert.Contains("tp = 8 does not divide model.tensorShards 4", refused.Message);
        Assert.Contains("the largest silo has 4", refused.Message);
        Assert.Equal(before.Plan.Generation, (await cluster.Client.GetStatusAsync(jobId)).Plan!.Generation);

        await cluster.Client.ReplanAsync(jobId, "dp=1,tp=4");
        var atFour = await cluster.Until(jobId, s => s.Plan!.Tp == 4);
        await cluster.Until(jobId, s => s.CommittedStep >= atFour.CommittedStep + 5);
        await cluster.Client.ReplanAsync(jobId, "dp=1,tp=1");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        Assert.Equal((1, 1), (status.Plan!.Dp, status.Plan.Tp));
        var moves = events.Where(e => e.Kind == "replanned").ToList();
        Assert.Equal(2, moves.Count);
        Assert.Equal(("requested", "dp=2,pp=1,tp=2", "dp=1,pp=1,tp=4"), (moves[0].Replan!.Cause, moves[0].Replan!.From, moves[0].Replan!.To));
        Assert.Equal(("requested", "dp=1,pp=1,tp=4", "dp=1,pp=1,tp=1"), (moves[1].Replan!.Cause, moves[1].Replan!.From, moves[1].Replan!.To));
        // Every old unit served (two replicas' tensor ranks, then four), none from a checkpoint, no step lost.
        Assert.Contains("from 2 unit(s) on 4 device(s) to 1 replica(s) over the data plane", moves[0].Message);
        Assert.Contains("from 1 unit(s) on 4 device(s) to 1 replica(s) over the data plane", moves[1].Message);
        Assert.All(moves, m => Assert.Contains("0 committed step(s) lost", m.Message));
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    public static TheoryData<int, string?, string, int> FailedPrepares => new()
    {
        // dp 2 -> 4 at tp 1: the kept replicas hand their state over on their devices, then a new replica's prepare fails.
        { 1, "dp=2,tp=1", "dp=4,tp=1", 3 },
        // dp 2 x tp 2 -> dp 1 x tp 4: both replicas stage their state in host memory, then the new replica's prepare fails.
        { 2, null, "dp=1,tp=4", 0 },
    };

    [Theory, MemberData(nameof(FailedPrepares))]
    public async Task A_replan_whose_prepare_fails_once_is_retried_from_the_state_in_memory_and_loses_no_step(int tensor, string? first, string plan, int failingReplica)
    {
        var spec = Spec(40, tensor);
        var reference = await TestSpecs.ReferenceDigest(spec);
        var fault = new FailFirstPrepare(afterGeneration: first is null ? 1 : 2, failingReplica);
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 4, jobs: Jobs, silo: s => s.AddIncomingGrainCallFilter(fault));
        var jobId = await cluster.Client.SubmitAsync(spec);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        if (first is not null)
        {
            await cluster.Client.ReplanAsync(jobId, first);
            await cluster.Until(jobId, s => s.Plan!.Generation == 2);
        }

        await cluster.Client.ReplanAsync(jobId, plan);
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(fault.Failed, log);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Contains(events, e => e.Kind == "replan-failed" && e.Message.Contains("injected prepare failure"));
        Assert.Contains(events, e => e.Kind == "replanned" && e.Message.Contains("over the data plane") && e.Message.Contains("0 committed step(s) lost"));
        Assert.True(reference == status.FinalParameterDigest, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task State_parked_by_a_failed_prepare_on_a_silo_that_then_drains_is_staged_there_and_moved_off_losing_no_step()
    {
        // Found by the chaos suite: the retry put no replica on the draining silo, so nothing adopted the state parked there.
        var spec = Spec(40, tensor: 1) with { Devices = new DeviceSpec { Min = 1, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var (cluster, fault, jobId, before) = await DrainingItsSiloWhenAReplanFails(spec, silos: 2);
        await using var stoppedAtTheEnd = cluster;
        var first = before.Plan!.Devices[0].Silo;
        Assert.All(before.Plan.Devices, d => Assert.Equal(first, d.Silo));

        await cluster.Client.ReplanAsync(jobId, "dp=1");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(fault.Failed, log);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.All(status.Plan!.Devices, d => Assert.NotEqual(first, d.Silo));
        var moved = Assert.Single(events, e => e.Kind == "replanned");
        Assert.Contains("from 1 unit(s) on 1 device(s) to 1 replica(s) over the data plane", moved.Message);
        Assert.Equal(0, moved.Replan!.StepsLost);
        Assert.True(reference == status.FinalParameterDigest, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task State_parked_by_a_failed_prepare_with_no_layout_left_is_checkpointed_from_host_memory_and_the_job_comes_back_from_it()
    {
        // The job's only silo drains while a re-plan fails after the hand-over: no layout runs anywhere, and the state is
        // only parked on a device. A unit there takes it into host memory and writes it as a checkpoint; when a silo
        // joins, the job comes back from it. (The spec checkpoints nothing itself: without this, training starts over.)
        var spec = Spec(40, tensor: 1) with { Devices = new DeviceSpec { Min = 1, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var (cluster, fault, jobId, _) = await DrainingItsSiloWhenAReplanFails(spec, silos: 1);
        await using var stoppedAtTheEnd = cluster;

        await cluster.Client.ReplanAsync(jobId, "dp=1");
        var waiting = await cluster.Until(jobId, s => s.LastCheckpointStep is not null);
        await cluster.AddSiloAsync();
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(fault.Failed, log);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Contains(events, e => e.Kind == "replanned" && e.Message.Contains($"its state is in the checkpoint of step {waiting.LastCheckpointStep}"));
        Assert.DoesNotContain(events, e => e.Replan?.StepsLost > 0 || e.Kind == JobEventKinds.Resumed);
        Assert.True(reference == status.FinalParameterDigest, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task A_cancel_that_arrives_while_a_replan_fails_ends_the_job_cancelled_not_failed()
    {
        var spec = Spec(400, tensor: 1);
        string? jobId = null;
        TestCluster? running = null;
        // The cancel comes while the new generation prepares, whose prepare then fails: a re-plan that is not retried.
        var fault = new FailFirstPrepare(afterGeneration: 1, replica: 0, before: () => running!.Client.CancelAsync(jobId!));
        await using var cluster = running = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 4, jobs: Jobs, silo: s => s.AddIncomingGrainCallFilter(fault));
        jobId = await cluster.Client.SubmitAsync(spec with { Devices = new DeviceSpec { Min = 1, Max = 2 } });
        await cluster.Until(jobId, s => s.CommittedStep >= 3);

        await cluster.Client.ReplanAsync(jobId, "dp=1");
        var status = await cluster.Finish(jobId);

        var log = string.Join("\n", await cluster.Events(jobId));
        Assert.True(fault.Failed, log);
        Assert.True(status.State == JobState.Cancelled, $"{status.State}: {status.Error}\n{log}");
        Assert.Matches(@"cancelled after step \d+ of 400 \(.*injected prepare failure", status.Error ?? log);
        Assert.True(status.CommittedStep >= 3, log);
    }

    /// <summary>
    /// A cluster of <paramref name="silos"/> silos with two devices each, running <paramref name="spec"/> past step 5 (returned),
    /// whose first prepare after generation 1 fails, the capacity grain draining the job's first silo just before.
    /// </summary>
    private static async Task<(TestCluster Cluster, FailFirstPrepare Fault, string JobId, JobStatus Running)> DrainingItsSiloWhenAReplanFails(TrainingSpec spec, int silos)
    {
        SiloAddress? first = null;
        TestCluster? running = null;
        var fault = new FailFirstPrepare(afterGeneration: 1, replica: 0,
            before: () => running!.Cluster.Client.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey).Drain(first!, "test: drained while a re-plan fails", preemption: false));
        running = await TestCluster.StartAsync(silos: silos, devicesPerSilo: 2, jobs: Jobs, silo: s => s.AddIncomingGrainCallFilter(fault));
        try
        {
            var jobId = await running.Client.SubmitAsync(spec);
            var status = await running.Until(jobId, s => s.CommittedStep >= 5);
            first = status.Plan!.Devices[0].Silo;
            return (running, fault, jobId, status);
        }
        catch
        {
            await running.DisposeAsync();
            throw;
        }
    }

    /// <summary>Fails the first prepare of one replica's unit in a generation after <paramref name="afterGeneration"/>, once.</summary>
    /// <param name="before">Run first, just before the failure (a cancel that arrives during the re-plan).</param>
    private sealed class FailFirstPrepare(int afterGeneration, int replica, Func<Task>? before = null) : IIncomingGrainCallFilter
    {
        private int _failed;

        public bool Failed => _failed == 1;

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            if (context.TargetContext.GrainInstance is ShardGroupGrain && context.InterfaceMethod.Name == nameof(ITrainingUnit.Prepare)
                && context.Request.GetArgument(0) is ShardAssignment a && a.Plan.Generation > afterGeneration && a.Replica == replica
                && Interlocked.CompareExchange(ref _failed, 1, 0) == 0)
            {
                if (before is not null) await before();
                throw new InvalidOperationException($"injected prepare failure in generation {a.Plan.Generation}");
            }
            await context.Invoke();
        }
    }
}
