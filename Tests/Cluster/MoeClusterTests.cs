using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

/// <summary>
/// MoE jobs on the cluster: experts spread over ep replicas move over the data plane when ep changes live, are rebuilt from
/// the replicas that host the same experts when one is killed, and come from the checkpoint when the only host of some
/// experts is lost, and follow a width no power of two divides (dp 6 at ep 2, dp 3 hosting every expert); always to the
/// digest of one device.
/// </summary>
public sealed class MoeClusterTests
{
    private static TrainingSpec Spec(int steps, int maxDevices, int ep, int everySteps) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Model = TestSpecs.Tiny().Model with { Layers = 4, Moe = new MoeSpec { Experts = 4, TopK = 2, Every = 2, CapacityFactor = 1.25 } },
        Devices = new DeviceSpec { Min = 1, Max = maxDevices },
        Parallel = new ParallelSpec { Expert = ep },
        Checkpoint = new CheckpointSpec { EverySteps = everySteps },
    };

    [Fact]
    public async Task Experts_follow_any_width_dp_6_at_ep_2_then_dp_3_hosting_all_to_the_one_device_digest()
    {
        // Twelve micro-batches over 6 replicas in expert groups of 2 (blocks [0, 4), [4, 8), [8, 12): two, three and two subtrees),
        // then over 3, which no ep 2 divides.
        var spec = Spec(12, 6, ep: 2, everySteps: 0) with { Batch = new BatchSpec { Global = 24, Micro = 2 }, Parallel = new ParallelSpec { Expert = 2, Start = "dp=6,ep=2" } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 3, jobs: LiveReplanTests.Jobs);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 3);
        Assert.Equal((6, 2), (before.Plan!.Dp, before.Plan.Ep));

        await cluster.Client.ReplanAsync(jobId, "dp=3");
        var status = await cluster.Finish(jobId);

        var log = string.Join("\n", await cluster.Events(jobId));
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Equal((3, 1), (status.Plan!.Dp, status.Plan.Ep));
        Assert.True(reference == status.FinalParameterDigest, log);
    }

    [Fact]
    public async Task Replan_ep_2_to_4_to_1_mid_job_ends_with_the_uninterrupted_digest_and_loses_no_step()
    {
        // No checkpoints: experts that did not move between the units' memories would show as steps lost. An alert at 1x the
        // mean load fires once the busiest expert has been above the mean for 20 steps (as it always is, a little).
        var plain = Spec(30, 4, ep: 2, everySteps: 0) with { Parallel = new ParallelSpec { Expert = 2, Start = "dp=4,ep=2" } };
        var spec = plain with { Model = plain.Model with { Moe = plain.Model.Moe! with { ImbalanceAlert = 1.0 } } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2, jobs: LiveReplanTests.Jobs);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 3);
        Assert.Equal((4, 2), (before.Plan!.Dp, before.Plan.Ep));
        Assert.NotNull(before.Experts);

        await cluster.Client.ReplanAsync(jobId, "dp=4,ep=4");
        var atFour = await cluster.Until(jobId, s => s.Plan!.Ep == 4);
        await cluster.Until(jobId, s => s.CommittedStep >= atFour.CommittedStep + 3);
        await cluster.Client.ReplanAsync(jobId, "dp=4,ep=1");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        Assert.Equal((4, 1), (status.Plan!.Dp, status.Plan.Ep));
        var moves = events.Where(e => e.Kind == "replanned").ToList();
        Assert.Equal(2, moves.Count);
        Assert.Equal(("requested", "dp=4,pp=1,tp=1,ep=2", "dp=4,pp=1,tp=1,ep=4"), (moves[0].Replan!.Cause, moves[0].Replan!.From, moves[0].Replan!.To));
        Assert.All(moves, m => Assert.Contains("over the data plane", m.Message));
        Assert.All(moves, m => Assert.Contains("0 committed step(s) lost", m.Message));
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
        // Every step reports what the experts did, the same whatever the layout (every token chose 2 experts in each of 2 layers).
        Assert.All(report.Steps, s => Assert.All(s.Experts!.Layers, l => Assert.Equal(2L * spec.Batch.Global * spec.Model.Context, l.Tokens.Sum())));
        Assert.Equal(status.Experts, report.Steps[^1].Experts);
        var alert = Assert.Single(events, e => e.Kind == JobEventKinds.ExpertsImbalanced);
        Assert.Contains("busiest expert has had over 1x the mean load for 20 steps", alert.Message);
    }

    [Fact]
    public async Task A_replica_killed_whose_experts_another_replica_hosts_too_is_rebuilt_from_the_peers()
    {
        // dp 4 in two expert groups on two silos of two devices: a silo's two replicas host both parts, the other silo's too.
        var spec = Spec(30, 4, ep: 2, everySteps: 5) with { Parallel = new ParallelSpec { Expert = 2, Start = "dp=4,ep=2" } };

        var (comeBack, log) = await TestCluster.KillAReplicaAfterACheckpoint(spec, await TestSpecs.ReferenceDigest(spec), devicesPerSilo: 2);

        Assert.True(comeBack.Message.Contains("over the data plane"), log);
    }

    [Fact]
    public async Task The_only_host_of_some_experts_killed_sends_the_job_to_its_checkpoint_and_the_event_says_so()
    {
        var spec = Spec(30, 2, ep: 2, everySteps: 5) with { Parallel = new ParallelSpec { Expert = 2, Start = "dp=2,ep=2" } };

        var (comeBack, log) = await TestCluster.KillAReplicaAfterACheckpoint(spec, await TestSpecs.ReferenceDigest(spec));

        Assert.True(comeBack.Message.Contains("the experts are spread over 2 replicas and a part of them was lost with every replica hosting it: from the checkpoint"), log);
    }
}
