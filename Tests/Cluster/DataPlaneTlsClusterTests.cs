using System.Security.Cryptography.X509Certificates;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Tests.Collectives;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Cluster;

/// <summary>A job across two silos whose data planes link inside mutual TLS trains, re-plans and ends with the bits of one device.</summary>
public sealed class DataPlaneTlsClusterTests
{
    [Fact]
    public async Task A_job_across_silos_over_a_tls_data_plane_ends_with_the_one_device_digest()
    {
        using var authority = new TestCertificates.Authority("elastic-ca");
        var tls = new DataPlaneTls(authority.Issue("elastic-silo"), new X509Certificate2Collection(authority.Certificate));
        var spec = TestSpecs.Tiny(steps: 30, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2, dataPlaneTls: tls);

        var jobId = await cluster.Client.SubmitAsync(spec);
        var running = await cluster.Until(jobId, s => s.CommittedStep >= 5);
        // dp 4 over both silos: every step's reduction crosses TLS links.
        Assert.Equal(2, running.Plan!.Devices.Select(d => d.Silo).Distinct().Count());
        await cluster.Client.ReplanAsync(jobId, "dp=2");
        var status = await cluster.Finish(jobId);

        var log = string.Join("\n", await cluster.Events(jobId));
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Contains("replanned: requested: dp=4,pp=1,tp=1 -> dp=2", log);
        Assert.True(reference == status.FinalParameterDigest, log);
    }
}
