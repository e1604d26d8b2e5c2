// The Elastic silo: one process per machine (or per group of GPUs). Configuration: the "Elastic" section
// (see docs/cluster.md), e.g. Elastic__Clustering=azure Elastic__ConnectionString=... Elastic__Devices__Count=2.
using Elastic.Client;
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

// The drain runs inside the host's stop: give it its whole timeout and the silo's stop after it.
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.ShutdownTimeout);
builder.UseOrleans(silo =>
{
    silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (settings.ClusterId, settings.ServiceId));
    silo.Configure<SiloOptions>(o => o.SiloName = settings.Name);
    switch (settings.Clustering)
    {
        case "azure":
            var tables = AzureTables.Connect(settings.ConnectionString!);
            silo.UseAzureStorageClustering(o => o.TableServiceClient = tables);
            // Job state outlives any one silo: keep it in the same storage account.
            silo.AddAzureTableGrainStorage(StorageNames.Jobs, o => o.TableServiceClient = tables);
            silo.UseAzureTableReminderService(o => o.TableServiceClient = tables);
            break;
        case "redis":
            silo.UseRedisClustering(settings.ConnectionString!);
            var redis = StackExchange.Redis.ConfigurationOptions.Parse(settings.ConnectionString!);
            // Job state outlives any one silo: keep it in the same Redis.
            silo.AddRedisGrainStorage(StorageNames.Jobs, o => o.ConfigurationOptions = redis.Clone());
            silo.UseRedisReminderService(o => o.ConfigurationOptions = redis.Clone());
            break;
        default:
            silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, serviceId: settings.ServiceId, clusterId: settings.ClusterId);
            break;
    }
    if (settings.Clustering != "localhost")
    {
        // In a pod, Orleans' Kubernetes hosting names the silo after the pod, advertises its IP and marks silos whose pods are gone as dead.
        if (settings.Pod is not null) silo.Configure<EndpointOptions>(o => (o.SiloPort, o.GatewayPort) = (settings.SiloPort, settings.GatewayPort)).UseKubernetesHosting();
        else silo.ConfigureEndpoints(settings.AdvertisedIp, settings.SiloPort, settings.GatewayPort);
    }
    silo.AddElastic(settings.Elastic, settings.Name);
});
using var host = builder.Build();
await host.StartAsync();
// The HTTP API in this silo's process, in front of its own grain factory.
await using (settings.Api is { } api ? await ApiServer.StartAsync(host.Services.GetRequiredService<IGrainFactory>(), api) : null)
await using (settings.ProbesPort > 0 ? await SiloProbes.StartAsync(settings.ProbesPort, host.Services) : null)
    await host.WaitForShutdownAsync();
return 0;
