using System.Security.Cryptography.X509Certificates;
using Elastic.Silo.Hosting;
using Elastic.Tests.Collectives;
using Microsoft.Extensions.Configuration;

namespace Elastic.Tests.Cluster;

/// <summary>The silo's scheduling configuration: tenant quotas read from Elastic:Scheduling, every bad value named at once.</summary>
public sealed class SiloSettingsTests
{
    private static SiloSettings Read(Dictionary<string, string?> values) =>
        SiloSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Tenant_quotas_and_the_default_quota_are_read()
    {
        var settings = Read(new()
        {
            ["Elastic:Scheduling:TenantDevices:team-a"] = "8",
            ["Elastic:Scheduling:TenantDevices:team-b"] = "2",
            ["Elastic:Scheduling:DefaultTenantDevices"] = "4",
        });

        var scheduling = settings.Elastic.Scheduling;
        Assert.Equal((8, 2, 4), (scheduling.QuotaOf("team-a"), scheduling.QuotaOf("team-b"), scheduling.QuotaOf("team-c")));
        Assert.Null(Read([]).Elastic.Scheduling.QuotaOf("team-a"));
    }

    [Fact]
    public void Bad_quotas_are_refused_each_with_its_key_and_value()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Read(new()
        {
            ["Elastic:Scheduling:TenantDevices:team-a"] = "0",
            ["Elastic:Scheduling:TenantDevices:Not A Tenant"] = "4",
            ["Elastic:Scheduling:DefaultTenantDevices"] = "many",
        }));

        Assert.Contains("Elastic:Scheduling:TenantDevices:team-a = 0: must be a positive number of devices", error.Message);
        Assert.Contains("Elastic:Scheduling:TenantDevices:Not A Tenant:", error.Message);
        Assert.Contains("Elastic:Scheduling:DefaultTenantDevices = many: must be a positive number of devices", error.Message);
    }

    [Fact]
    public void Data_plane_tls_loads_the_certificate_and_the_authority_and_refuses_an_unreadable_one_without_the_password()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-tls-settings-").FullName;
        try
        {
            using var authority = new TestCertificates.Authority("elastic-ca");
            using var leaf = authority.Issue("silo-a");
            var pfx = Path.Combine(folder, "silo.pfx");
            var ca = Path.Combine(folder, "ca.pem");
            File.WriteAllBytes(pfx, leaf.Export(X509ContentType.Pfx, "right-password"));
            File.WriteAllText(ca, authority.Certificate.ExportCertificatePem());

            var settings = Read(new()
            {
                ["Elastic:DataPlane:Tls:Certificate"] = pfx,
                ["Elastic:DataPlane:Tls:CertificatePassword"] = "right-password",
                ["Elastic:DataPlane:Tls:Trusted"] = ca,
                ["Elastic:Tls:Certificate"] = pfx,
                ["Elastic:Tls:CertificatePassword"] = "right-password",
            }).Elastic;
            var tls = settings.DataPlaneTls!;
            // Orleans TLS (Elastic:Tls) without Trusted: peers must present this same certificate.
            Assert.Equal(leaf.Thumbprint, settings.ClusterTls!.Certificate.Thumbprint);
            Assert.Null(settings.ClusterTls.Trusted);
            Assert.Equal(leaf.Thumbprint, tls.Identity.Certificate.Thumbprint);
            Assert.Equal(authority.Certificate.Thumbprint, Assert.Single(tls.Identity.Trusted!).Thumbprint);
            Assert.Null(Read([]).Elastic.DataPlaneTls);
            Assert.Null(Read([]).Elastic.ClusterTls);

            var error = Assert.Throws<InvalidOperationException>(() => Read(new()
            {
                ["Elastic:DataPlane:Tls:Certificate"] = pfx,
                ["Elastic:DataPlane:Tls:CertificatePassword"] = "wrong-password",
            }));
            Assert.Contains($"Elastic:DataPlane:Tls: {pfx}: not a readable PKCS#12 certificate with its key", error.Message);
            Assert.DoesNotContain("wrong-password", error.Message);
            Assert.Contains("Elastic:DataPlane:Tls:Trusted: set with Elastic:DataPlane:Tls:Certificate",
                Assert.Throws<InvalidOperationException>(() => Read(new() { ["Elastic:DataPlane:Tls:Trusted"] = ca })).Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
