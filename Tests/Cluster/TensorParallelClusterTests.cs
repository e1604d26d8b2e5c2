using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>
/// Tensor-parallel jobs on the cluster: each replica's tensor-parallel group on one silo's devices, replicas across
/// silos, and the bits of the single-device engine, also after the job loses a silo (stopped or killed mid-step) and
/// shrinks its data parallelism.
/// </summary>
public sealed class TensorParallelClusterTests
{
    private static TrainingSpec Spec(int steps, int minDevices, int maxDevices) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Devices = new DeviceSpec { Min = minDevices, Max = maxDevices },
        Parallel = new ParallelSpec { Tensor = 2 },
        Eval = new EvalSpec { Every = 2, Batches = 2 },
    };

    [Fact]
    public async Task Tp_2_with_dp_1_and_2_gives_the_engines_parameters_and_losses_bit_for_bit()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var reference = await TestSpecs.OnDevice(() =>
        {
            var spec = Spec(5, 2, 2);
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer);
        });
        foreach (var (devices, dp) in new[] { (2, 1), (4, 2) })
        {
            var jobId = await cluster.Client.SubmitAsync(Spec(5, devices, devices));
            var status = await cluster.Finish(jobId);
            Assert.True(status.State == JobState.Completed, $"{devices} devices: {status.State} {status.Error}");
            Assert.Equal((dp, 2), (status.Plan!.Dp, status.Plan.Tp));
            // Each replica's tensor-parallel group is on one silo.
            Assert.All(Enumerable.Range(0, dp), r => Assert.Single(status.Plan.ReplicaGroupOf(r).Select(d => d.Silo).Distinct()));
            await cluster.AssertSameRun(reference, status);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_tp_2_job_that_loses_a_silo_keeps_tp_shrinks_dp_and_ends_with_the_fixed_layout_bits(bool killed)
    {
        var spec = Spec(150, 2, 4);
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var running = await cluster.Until(jobId, s => s.CommittedStep >= 5);
        Assert.Equal((2, 2), (running.Plan!.Dp, running.Plan.Tp));

        var leaving = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        // Stopped gracefully (it drains: a leave at a step boundary), or killed mid-step (its peers' collectives fail).
        if (killed) await cluster.Cluster.KillSiloAsync(leaving);
        else await cluster.Cluster.StopSiloAsync(leaving);

        var status = await cluster.Finish(jobId);
        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        Assert.Equal((1, 2), (status.Plan!.Dp, status.Plan.Tp));
        Assert.Contains(events, e => e.Kind == "replanned" && e.Replan is { To: "dp=1,pp=1,tp=2", StepsLost: 0 });
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }
}
