using System.Security.Cryptography.X509Certificates;
using Elastic.Silo.Hosting;
using Elastic.Tests.Collectives;
using Microsoft.Extensions.Configuration;

namespace Elastic.Tests.Cluster;

/// <summary>The silo's configuration: quotas, TLS, and the Kubernetes pod it runs in, every bad value named at once.</summary>
public sealed class SiloSettingsTests
{
    private static SiloSettings Read(Dictionary<string, string?> values, Dictionary<string, string>? environment = null) =>
        SiloSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(values).Build(), name => environment?.GetValueOrDefault(name));

    private static Dictionary<string, string> Pod() => new()
    {
        ["KUBERNETES_SERVICE_HOST"] = "10.0.0.1",
        ["POD_NAME"] = "elastic-silo-5d8c7f9b6-x2x4q",
        ["POD_NAMESPACE"] = "elastic",
        ["POD_IP"] = "10.244.1.17",
        ["ORLEANS_CLUSTER_ID"] = "prod",
        ["ORLEANS_SERVICE_ID"] = "elastic",
    };

    [Fact]
    public void In_a_pod_the_silo_is_named_addressed_and_clustered_after_the_pod_and_listens_on_every_interface()
    {
        var settings = Read(new() { ["Elastic:Clustering"] = "azure", ["Elastic:ConnectionString"] = "https://store.table.core.windows.net", ["Elastic:DrainTimeoutSeconds"] = "25" }, Pod());

        Assert.Equal(("elastic-silo-5d8c7f9b6-x2x4q", "prod", "elastic"), (settings.Name, settings.ClusterId, settings.ServiceId));
        Assert.Equal("10.244.1.17", settings.AdvertisedIp.ToString());
        Assert.Equal(("0.0.0.0", "10.244.1.17"), (settings.Elastic.DataPlaneBind, settings.Elastic.DataPlaneHost));
        Assert.Equal("elastic", settings.Pod!.Namespace);
        Assert.Equal(TimeSpan.FromSeconds(25) + SiloSettings.StopAllowance, settings.ShutdownTimeout);

        // Outside a pod (no KUBERNETES_SERVICE_HOST, whatever else is set), nothing of this applies.
        var plain = Read([], Pod().Where(v => v.Key != "KUBERNETES_SERVICE_HOST").ToDictionary());
        Assert.Null(plain.Pod);
        Assert.Equal(("127.0.0.1", null, "elastic"), (plain.Elastic.DataPlaneBind, plain.Elastic.DataPlaneHost, plain.ClusterId));
    }

    [Fact]
    public void A_pod_without_its_variables_or_with_settings_that_contradict_it_is_refused_naming_each()
    {
        var environment = Pod();
        environment.Remove("ORLEANS_CLUSTER_ID");
        environment["POD_IP"] = "not-an-ip";
        var error = Assert.Throws<InvalidOperationException>(() => Read(new() { ["Elastic:Name"] = "silo-7", ["Elastic:ServiceId"] = "elastic" }, environment));

        Assert.Contains("ORLEANS_CLUSTER_ID: not set, but this silo runs in a Kubernetes pod (POD_NAME = elastic-silo-5d8c7f9b6-x2x4q)", error.Message);
        Assert.Contains("POD_IP = not-an-ip: not an IP address", error.Message);
        Assert.Contains("Elastic:Name = silo-7: in a Kubernetes pod it is elastic-silo-5d8c7f9b6-x2x4q (from the pod); leave it unset", error.Message);
        Assert.Contains("Elastic:Clustering = localhost: silos in Kubernetes pods need shared membership, azure or redis", error.Message);
        Assert.DoesNotContain("Elastic:ServiceId", error.Message);
    }

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
