using Elastic.Silo.Hosting;
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
}
