// The Elastic silo: one process per machine (or per group of GPUs). Configuration: the "Elastic" section
// (see docs/cluster.md), e.g. Elastic__Clustering=azure Elastic__ConnectionString=... Elastic__Devices__Count=2.
using Elastic.Grains.Jobs;
using Elastic.Service;
using Elastic.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;

var builder = Host.CreateApplicationBuilder(args);
SiloSettings settings;
try
{
    settings = SiloSettings.Read(builder.Configuration);
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

builder.UseOrleans(silo =>
{
    silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (settings.ClusterId, settings.ServiceId));
    silo.Configure<SiloOptions>(o => o.SiloName = settings.Name);
    switch (settings.Clustering)
    {
        case "azure":
            silo.UseAzureStorageClustering(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(settings.ConnectionString));
            // Job state outlives any one silo: keep it in the same storage account.
            silo.AddAzureTableGrainStorage(StorageNames.Jobs, o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(settings.ConnectionString));
            silo.UseAzureTableReminderService(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(settings.ConnectionString));
            silo.ConfigureEndpoints(settings.AdvertisedIp, settings.SiloPort, settings.GatewayPort);
            break;
        case "redis":
            silo.UseRedisClustering(settings.ConnectionString!);
            silo.UseRedisReminderService(o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(settings.ConnectionString!));
            silo.ConfigureEndpoints(settings.AdvertisedIp, settings.SiloPort, settings.GatewayPort);
            break;
        default:
            silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, serviceId: settings.ServiceId, clusterId: settings.ClusterId);
            break;
    }
    silo.AddElastic(settings.Elastic, settings.Name);
});
using var host = builder.Build();
await host.StartAsync();
// The HTTP API in this silo's process, in front of its own grain factory.
await using (settings.Api is { } api ? await ApiServer.StartAsync(host.Services.GetRequiredService<IGrainFactory>(), api) : null)
    await host.WaitForShutdownAsync();
return 0;
