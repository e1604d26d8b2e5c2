using System.Security.Cryptography.X509Certificates;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Security;
using Elastic.Silo.Hosting;
using Elastic.Tests.Collectives;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Cluster;

/// <summary>
/// Clusters whose connections are mutual TLS with certificates of the cluster's CA: a job across silos whose data planes
/// link inside TLS trains, re-plans and ends with the bits of one device; silos whose Orleans traffic (silo to silo, client
/// to gateway, real sockets) is TLS serve a client that holds a certificate of the CA and refuse one without, or with
/// another CA's.
/// </summary>
public sealed class ClusterTlsTests
{
    [Fact]
    public async Task A_job_across_silos_over_a_tls_data_plane_ends_with_the_one_device_digest()
    {
        using var authority = new TestCertificates.Authority("elastic-ca");
        var tls = new DataPlaneTls(new ClusterCertificate(authority.Issue("elastic-silo"), new X509Certificate2Collection(authority.Certificate)));
        var spec = TestSpecs.Tiny(steps: 30, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2, dataPlaneTls: tls);

        var jobId = await cluster.Client.SubmitAsync(spec);
        var running = await cluster.Until(jobId, s => s.CommittedStep >= 5);
        // dp 4 over both silos: every step's reduction crosses TLS links.
        Assert.Equal(2, running.Plan!.Devices.Select(d => d.Silo).Distinct().Count());
        await cluster.Client.ReplanAsync(jobId, "dp=2");
        var status = await cluster.Finish(jobId);

        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Contains(events, e => e.Replan is { Cause: "requested", From: "dp=4,pp=1,tp=1", To: "dp=2,pp=1,tp=1" });
        Assert.True(reference == status.FinalParameterDigest, log);
    }

    [Fact]
    public async Task Silos_with_orleans_tls_serve_a_client_of_their_authority_and_refuse_others()
    {
        using var authority = new TestCertificates.Authority("elastic-ca");
        using var stranger = new TestCertificates.Authority("someone-else");
        var trusted = new X509Certificate2Collection(authority.Certificate);
        var folder = Directory.CreateTempSubdirectory("elastic-cluster-tls-").FullName;
        try
        {
            await using var cluster = await EmbeddedCluster.StartAsync([1, 1], Path.Combine(folder, "checkpoints"),
                clusterTls: new ClusterCertificate(authority.Issue("elastic-silo"), trusted));
            var gateway = ClusterAddress.Static([cluster.Gateway]);
            await using (var member = await ElasticConnection.ConnectAsync(gateway, TimeSpan.FromSeconds(20), tls: new ClusterCertificate(authority.Issue("elastic-client"), trusted)))
            {
                await member.Client.WaitForDevicesAsync(2, TimeSpan.FromSeconds(30));
                var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 2, Max = 2 } };
                var status = await member.Client.WaitForCompletionAsync(await member.Client.SubmitAsync(spec));
                Assert.True(status.State == JobState.Completed, status.Error);
                // Two silos, one device each: the replicas reduced across silos, whose messages went over TLS.
                Assert.Equal(2, status.Plan!.Devices.Select(d => d.Silo).Distinct().Count());
                Assert.Equal(await TestSpecs.ReferenceDigest(spec), status.FinalParameterDigest);
            }
            await Assert.ThrowsAsync<ClusterUnavailableException>(() => ElasticConnection.ConnectAsync(gateway, TimeSpan.FromSeconds(3)));
            await Assert.ThrowsAsync<ClusterUnavailableException>(() => ElasticConnection.ConnectAsync(gateway, TimeSpan.FromSeconds(3),
                tls: new ClusterCertificate(stranger.Issue("intruder"), new X509Certificate2Collection(stranger.Certificate))));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
