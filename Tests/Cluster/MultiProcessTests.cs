using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

public sealed class MultiProcessTests
{
    [Fact]
    public async Task Three_silo_processes_complete_a_dp_4_job_with_the_engines_digest()
    {
        var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 4, Max = 4 } };
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer).FinalParameterDigest;
        });

        await using var cluster = await ProcessCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        await using var connection = await cluster.ConnectAsync();
        var inventory = await connection.Client.WaitForDevicesAsync(6, TimeSpan.FromSeconds(60));
        Assert.Equal(3, inventory.Count);

        var jobId = await connection.Client.SubmitAsync(spec, "multi-process");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var status = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(4, status.Plan!.Dp);
        Assert.True(status.Plan.Devices.Select(d => d.Silo).Distinct().Count() >= 2, "the replicas should span silo processes");
        Assert.Equal(reference, status.FinalParameterDigest);
    }
}
