using System.Net;
using System.Security.Cryptography.X509Certificates;
using Elastic.Security;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Collectives;

/// <summary>
/// Data-plane links inside mutual TLS: ranks with a cluster-wide certificate, or with certificates of the cluster's CA, link
/// and reduce; a peer whose certificate another CA issued, or that speaks without TLS, is refused and reported.
/// </summary>
public sealed class DataPlaneTlsTests
{
    [Fact]
    public async Task Ranks_sharing_one_certificate_link_inside_tls_and_reduce()
    {
        using var shared = ClusterCertificate.SelfSigned("elastic-cluster");
        await using var a = new DataPlane(IPAddress.Loopback, tls: new DataPlaneTls(new ClusterCertificate(shared)));
        await using var b = new DataPlane(IPAddress.Loopback, tls: new DataPlaneTls(new ClusterCertificate(shared)));

        Assert.Equal(new[] { 3.0, 3.0 }, await Reduce(a, b));
    }

    [Fact]
    public async Task Ranks_with_certificates_of_the_clusters_authority_link_and_reduce()
    {
        using var authority = new TestCertificates.Authority("elastic-ca");
        var trusted = new X509Certificate2Collection(authority.Certificate);
        await using var a = new DataPlane(IPAddress.Loopback, tls: new DataPlaneTls(new ClusterCertificate(authority.Issue("silo-a"), trusted)));
        await using var b = new DataPlane(IPAddress.Loopback, tls: new DataPlaneTls(new ClusterCertificate(authority.Issue("silo-b"), trusted)));

        Assert.Equal(new[] { 3.0, 3.0 }, await Reduce(a, b));
    }

    [Fact]
    public async Task A_peer_with_another_authoritys_certificate_or_without_tls_is_refused_and_reported()
    {
        using var ours = new TestCertificates.Authority("elastic-ca");
        using var theirs = new TestCertificates.Authority("someone-else");
        var refusals = new List<string>();
        await using var listener = new DataPlane(IPAddress.Loopback, refused: m => { lock (refusals) refusals.Add(m); },
            tls: new DataPlaneTls(new ClusterCertificate(ours.Issue("silo-a"), new X509Certificate2Collection(ours.Certificate))));
        await using var stranger = new DataPlane(IPAddress.Loopback, tls: new DataPlaneTls(new ClusterCertificate(theirs.Issue("silo-x"), new X509Certificate2Collection(theirs.Certificate))));
        await using var plain = new DataPlane(IPAddress.Loopback);

        foreach (var (dialler, group) in new[] { (stranger, "job/g1/data"), (plain, "job/g2/data") })
        {
            var endpoints = new[] { listener.Endpoint, dialler.Endpoint };
            var rank0 = listener.JoinAsync(group, 0, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(3));
            var rank1 = await Assert.ThrowsAsync<CollectiveException>(() => dialler.JoinAsync(group, 1, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(3)));
            Assert.Contains(group, rank1.Message);
            await Assert.ThrowsAsync<CollectiveException>(() => rank0);
        }
        Assert.Equal(2, listener.Refusals);
        Assert.All(refusals, r => Assert.Contains("the TLS handshake failed", r));
    }

    private static async Task<double[]> Reduce(DataPlane a, DataPlane b)
    {
        var endpoints = new[] { a.Endpoint, b.Endpoint };
        var ranks = await Task.WhenAll(a.JoinAsync("job/g1/data", 0, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(10)),
            b.JoinAsync("job/g1/data", 1, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(10)));
        var sums = await Task.WhenAll(ranks.Select(c => Task.Run(() => c.AllReduceSum(c.Rank + 1.0))));
        foreach (var rank in ranks) rank.Dispose();
        return sums;
    }
}
