using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>Data-parallel jobs on a 2-silo x 2-device cluster against the single-device engine, bit for bit.</summary>
public sealed class DataParallelTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private static TrainingSpec Spec(int dp, string precision = "fp32") => TestSpecs.Tiny(steps: 5, global: 16, micro: 2, dropout: 0.1) with
    {
        Devices = new DeviceSpec { Min = dp, Max = dp },
        Eval = new EvalSpec { Every = 2, Batches = 2 },
        Runtime = new RuntimeSpec { Precision = precision },
    };

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16")]
    public async Task Dp_1_2_3_and_4_give_the_engines_parameters_and_losses_bit_for_bit(string precision)
    {
        var reference = await TestSpecs.OnDevice(() =>
        {
            var spec = Spec(1, precision);
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer);
        });
        // dp 3 splits the 8 micro-batches 2, 3, 3: its replicas still sum subtrees of the one-device tree.
        foreach (var dp in new[] { 1, 2, 3, 4 })
        {
            var jobId = await _cluster.Client.SubmitAsync(Spec(dp, precision));
            var status = await _cluster.Finish(jobId);
            Assert.True(status.State == JobState.Completed, $"dp={dp}: {status.State} {status.Error}");
            Assert.Equal(dp, status.Plan!.Dp);
            await _cluster.AssertSameRun(reference, status);
            Assert.Equal("cpu", status.Device);
            Assert.Equal("cpu", (await _cluster.Client.GetReportAsync(jobId)).Device);
        }
    }

    [Fact]
    public async Task A_job_goes_through_its_lifecycle_and_watchers_see_every_step_and_event()
    {
        var jobId = await _cluster.Client.SubmitAsync(Spec(2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } });
        var steps = new List<long>();
        var events = new List<JobEvent>();
        var states = new List<JobState>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await foreach (var progress in _cluster.Client.WatchAsync(jobId, timeout.Token))
        {
            steps.AddRange(progress.Steps.Select(s => s.Step));
            events.AddRange(progress.Events);
            states.Add(progress.Status.State);
        }
        Assert.Equal([1L, 2, 3, 4, 5], steps);
        Assert.Equal(["submitted", "planned", "completed"], events.Select(e => e.Kind));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Index));
        Assert.Equal(JobState.Completed, states[^1]);
        var status = await _cluster.Client.GetStatusAsync(jobId);
        Assert.Equal(4, status.Plan!.Dp); // the widest the 4 free devices allow
        Assert.Equal(5, status.CommittedStep);
        Assert.Contains(jobId, (await _cluster.Client.ListAsync()).Select(j => j.JobId));
        Assert.All(await _cluster.Client.GetInventoryAsync(), silo => Assert.Equal(0, silo.DevicesInUse));
    }

    [Fact]
    public async Task Silos_without_nccl_say_so_and_a_plan_across_gpus_of_two_silos_draws_no_ids_and_says_why()
    {
        var silos = await _cluster.Client.GetInventoryAsync();
        Assert.All(silos, s => Assert.Equal("frames over the data plane (CPU devices)", s.DeviceTransport));
        var devices = silos.SelectMany(s => Enumerable.Range(0, 2).Select(d => new DeviceSlot(s.Silo, d, s.DataPlane))).ToList();

        // On CPU devices nothing is drawn and nothing said.
        var cpu = ParallelPlan.Of(7, new Layout(2, 1, 2), devices);
        Assert.Equal((null, null), await DeviceGroupIds.DrawAsync(_cluster.Cluster.Client, "draw-cpu", cpu));

        // On GPUs every silo of the data groups (the tensor groups share a process) is asked whether it has NCCL: none has here.
        var gpu = ParallelPlan.Of(7, new Layout(2, 1, 2), [.. devices.Select(d => d with { Model = "cuda: test" })]);
        Assert.Equal(["dp[pp0,tp0]", "dp[pp0,tp1]"], gpu.DeviceGroupsAcrossProcesses().Select(g => g.Name).ToArray());
        var (ids, text) = await DeviceGroupIds.DrawAsync(_cluster.Cluster.Client, "draw-gpu", gpu);
        Assert.Null(ids);
        Assert.StartsWith($"generation 7: tensors between processes go over frames on the data plane; frames in 2 group(s): silo {devices[0].Silo} has frames over the data plane (", text);
        Assert.Contains($"; silo {devices[2].Silo} has frames over the data plane (", text);
    }
}
