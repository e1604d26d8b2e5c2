using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>
/// Pipeline-parallel jobs on the cluster: a replica's stages on different silos (activations over TCP), the bits of the
/// single-device engine at any pp and dp (dp 3 included: replicas running 2, 3 and 3 micro-batches), and pp changed live (2 -> 1 -> 4) with the state moved as regions between the
/// units' memories.
/// </summary>
public sealed class PipelineClusterTests
{
    // Four layers (one per stage at pp = 4), eight micro-batches of 2, dropout on, tied embeddings (the default).
    private static TrainingSpec Spec(int steps, int minDevices, int maxDevices, int pipeline) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Model = TestSpecs.Tiny().Model with { Layers = 4 },
        Devices = new DeviceSpec { Min = minDevices, Max = maxDevices },
        Parallel = new ParallelSpec { Pipeline = pipeline, Schedule = "1f1b" },
        Eval = new EvalSpec { Every = 2, Batches = 2 },
        Checkpoint = new CheckpointSpec { EverySteps = 0 }, // no checkpoint to fall back to: state lost would show as steps lost
    };

    [Theory]
    [InlineData(1, 2, 1)]
    [InlineData(2, 4, 2)]
    [InlineData(3, 6, 3)] // three replicas split the eight micro-batches 2, 3, 3
    public async Task Pp_2_with_stages_on_two_silos_gives_the_engines_parameters_and_losses_bit_for_bit(int devicesPerSilo, int devices, int dp)
    {
        var spec = Spec(4, devices, devices, pipeline: 2);
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer);
        });
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: devicesPerSilo);

        var jobId = await cluster.Client.SubmitAsync(spec);
        var status = await cluster.Finish(jobId);

        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{string.Join("\n", await cluster.Events(jobId))}");
        Assert.Equal((dp, 2, 1), (status.Plan!.Dp, status.Plan.Pp, status.Plan.Tp));
        // Balanced by FLOPs: the head (vocabulary 256) costs about 0.6 of a layer here, so each stage gets two layers.
        Assert.Equal("stage 0: embedding + layers 0-1; stage 1: layers 2-3 + head", status.Stages);
        if (devicesPerSilo == 1) Assert.Equal(2, status.Plan.ReplicaGroupOf(0).Select(d => d.Silo).Distinct().Count());
        await cluster.AssertSameRun(reference, status);
    }

    [Fact]
    public async Task Replan_pp_2_to_1_to_4_mid_job_ends_with_the_uninterrupted_digest_and_loses_no_step()
    {
        var spec = Spec(40, 1, 4, pipeline: 2);
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2, jobs: LiveReplanTests.Jobs);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 3);
        Assert.Equal((2, 2), (before.Plan!.Dp, before.Plan.Pp));

        await cluster.Client.ReplanAsync(jobId, "dp=1,pp=1");
        var atOne = await cluster.Until(jobId, s => s.Plan!.Pp == 1);
        await cluster.Until(jobId, s => s.CommittedStep >= atOne.CommittedStep + 3);
        await cluster.Client.ReplanAsync(jobId, "dp=1,pp=4");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        Assert.Equal((1, 4, 1), (status.Plan!.Dp, status.Plan.Pp, status.Plan.Tp));
        var moves = events.Where(e => e.Kind == "replanned").ToList();
        Assert.Equal(2, moves.Count);
        Assert.Equal(("requested", "dp=2,pp=2,tp=1", "dp=1,pp=1,tp=1"), (moves[0].Replan!.Cause, moves[0].Replan!.From, moves[0].Replan!.To));
        Assert.Equal(("requested", "dp=1,pp=1,tp=1", "dp=1,pp=4,tp=1"), (moves[1].Replan!.Cause, moves[1].Replan!.From, moves[1].Replan!.To));
        Assert.All(moves, m => Assert.Contains("over the data plane", m.Message));
        Assert.All(moves, m => Assert.Contains("0 committed step(s) lost", m.Message));
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task A_pp_2_job_whose_only_pipeline_loses_a_stage_comes_back_from_its_checkpoint_and_says_what_it_cost()
    {
        var spec = Spec(60, 2, 2, pipeline: 2) with { Checkpoint = new CheckpointSpec { EverySteps = 5 } };

        // The job's two stages on two silos: no copy of the lost stage survives, and the surviving stage alone is not a replica.
        var (comeBack, log) = await TestCluster.KillAReplicaAfterACheckpoint(spec, await TestSpecs.ReferenceDigest(spec));

        Assert.True(comeBack.Message.Contains("no replica survived: from the checkpoint"), log);
        Assert.Matches(@"; \d+ committed step\(s\) lost", comeBack.Message);
    }
}
