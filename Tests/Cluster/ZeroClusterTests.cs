using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

/// <summary>
/// ZeRO jobs on the cluster: the optimizer state partitioned over the replicas is re-sharded over the data plane when dp or
/// the ZeRO stage changes live, and comes from the checkpoint when a replica holding the only copy of its part is lost.
/// </summary>
public sealed class ZeroClusterTests
{
    private static TrainingSpec Spec(int steps, int maxDevices, int zero, int everySteps) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Model = TestSpecs.Tiny().Model with { Layers = 4 },
        Devices = new DeviceSpec { Min = 1, Max = maxDevices },
        Parallel = new ParallelSpec { Zero = zero },
        Checkpoint = new CheckpointSpec { EverySteps = everySteps },
    };

    [Fact]
    public async Task Replan_dp_4_to_2_to_4_under_zero_3_and_across_stages_mid_job_ends_with_the_uninterrupted_digest_and_loses_no_step()
    {
        // No checkpoints: state that did not move between the units' memories would show as steps lost.
        var spec = Spec(40, 4, zero: 3, everySteps: 0) with { Parallel = new ParallelSpec { Zero = 3, Start = "dp=4" } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2, jobs: LiveReplanTests.Jobs);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 3);
        Assert.Equal((4, 3), (before.Plan!.Dp, before.Plan.Zero));

        await cluster.Client.ReplanAsync(jobId, "dp=2,zero=1");
        var atTwo = await cluster.Until(jobId, s => s.Plan!.Dp == 2);
        Assert.Equal(1, atTwo.Plan!.Zero);
        await cluster.Until(jobId, s => s.CommittedStep >= atTwo.CommittedStep + 3);
        await cluster.Client.ReplanAsync(jobId, "dp=4,zero=3");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        Assert.Equal((4, 3), (status.Plan!.Dp, status.Plan.Zero));
        var moves = events.Where(e => e.Kind == "replanned").ToList();
        Assert.Equal(2, moves.Count);
        Assert.Equal(("requested", "dp=4,pp=1,tp=1,zero=3", "dp=2,pp=1,tp=1,zero=1"), (moves[0].Replan!.Cause, moves[0].Replan!.From, moves[0].Replan!.To));
        Assert.All(moves, m => Assert.Contains("over the data plane", m.Message));
        Assert.All(moves, m => Assert.Contains("0 committed step(s) lost", m.Message));
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
        // The busiest of four replicas keeps well under half of the 8 bytes of moments per parameter, and under zero 3 less
        // than all of the parameters (its part and the largest unit gathered).
        Assert.True(status.Memory!.OptimizerState < 4 * report.Parameters, $"{status.Memory} for {report.Parameters} parameters");
        Assert.True(status.Memory.Parameters < 4 * report.Parameters, $"{status.Memory} for {report.Parameters} parameters");
        Assert.Equal(status.Memory, report.Memory);
    }

    [Fact]
    public async Task A_zero_2_replica_killed_takes_its_part_of_the_moments_with_it_and_the_job_comes_back_from_its_checkpoint()
    {
        var spec = Spec(40, 2, zero: 2, everySteps: 5);

        var (comeBack, log) = await TestCluster.KillAReplicaAfterACheckpoint(spec, await TestSpecs.ReferenceDigest(spec));

        Assert.True(comeBack.Message.Contains("the optimizer state is partitioned (zero 2) and a part was lost with its replica: from the checkpoint"), log);
    }
}
