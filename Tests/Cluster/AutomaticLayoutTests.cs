using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Tests.Cluster;

/// <summary>
/// The planner chooses every dimension a spec leaves free as devices come and go: a job never waits while some layout fits
/// what it has, goes back to a faster layout when devices return, keeps what its spec pins, and ends with the one-device bits.
/// </summary>
public sealed class AutomaticLayoutTests
{
    // 2 layers, S = 4, 8 micro-batches: dp, pp 2 and tp up to 4 all run it.
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(steps: 300, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };

    private static readonly Lazy<Task<string>> Reference = new(() => TestSpecs.ReferenceDigest(Spec));

    [Fact]
    public async Task A_job_started_at_dp1_pp2_tp2_that_loses_a_silo_keeps_training_on_two_devices_and_grows_back_with_the_same_bits()
    {
        var spec = Spec with { Parallel = new ParallelSpec { Start = "dp=1,pp=2,tp=2" } };
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var started = await cluster.Until(jobId, s => s.CommittedStep >= 5);
        Assert.Equal(new Layout(1, 2, 2), started.Plan!.ToLayout());

        await cluster.Cluster.StopSiloAsync(await cluster.SiloOfReplicaButNotCoordinator(jobId));
        var shrunk = await cluster.Until(jobId, s => s.Plan!.Generation == 2 && s.State == JobState.Running);
        Assert.InRange(shrunk.Plan!.DeviceCount, 1, 2);
        var training = await cluster.Until(jobId, s => s.CommittedStep > shrunk.CommittedStep + 5);
        Assert.Equal(2, training.Plan!.Generation);

        await cluster.AddSiloAsync();
        await cluster.Until(jobId, s => s.Plan!.DeviceCount == 4);

        var (events, log) = await EndsWithTheOneDeviceDigest(cluster, jobId);
        // A loaded machine may add a failure re-plan between them; the leave comes first and a join grows the job back.
        var moves = events.Where(e => e.Kind == JobEventKinds.Replanned).Select(e => e.Replan!).ToList();
        var (leave, join) = (moves[0], moves.Last(m => m.Cause == "join"));
        Assert.True((leave.Cause, leave.From) == ("leave", "dp=1,pp=2,tp=2"), log);
        Assert.All(moves, m => Assert.True(m.StepsLost == 0, log));
        Assert.True(join.PredictedStepSeconds > 0 && join.MeasuredStepSeconds > 0, log);
        Assert.Contains(events, e => e.Kind == JobEventKinds.Replanned && e.Message.Contains($"{leave.From} -> {leave.To}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_job_whose_spec_pins_tp_keeps_it_through_every_replan()
    {
        var spec = Spec with { Parallel = new ParallelSpec { Tensor = 2 } };
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(spec);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);

        await cluster.Cluster.StopSiloAsync(await cluster.SiloOfReplicaButNotCoordinator(jobId));
        await cluster.Until(jobId, s => s.Plan!.Generation == 2 && s.State == JobState.Running);
        await cluster.AddSiloAsync();
        await cluster.Until(jobId, s => s.Plan!.DeviceCount == 4);

        var (events, log) = await EndsWithTheOneDeviceDigest(cluster, jobId);
        var layouts = events.Where(e => e.Kind == JobEventKinds.Replanned).SelectMany(e => new[] { e.Replan!.From, e.Replan.To }).ToList();
        Assert.True(layouts.Count >= 4, log);
        Assert.All(layouts, l => Assert.Contains("tp=2", l));
    }

    /// <summary>Waits for the job to complete with the one-device digest; its events and their log (in every failure message).</summary>
    private static async Task<(List<JobEvent> Events, string Log)> EndsWithTheOneDeviceDigest(TestCluster cluster, string jobId)
    {
        var status = await cluster.Finish(jobId);
        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed && await Reference.Value == status.FinalParameterDigest, log);
        return (events, log);
    }
}
