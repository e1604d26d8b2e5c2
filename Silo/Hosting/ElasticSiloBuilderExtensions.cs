using System.Globalization;
using System.Net;
using Elastic.Checkpoints.Stores;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Devices;
using Elastic.Grains.Jobs;
using Elastic.Grains.Placement;
using Elastic.Silo.Eviction;
using Elastic.Training.Calibration;
using Elastic.Training.Collectives;
using Elastic.Training.Collectives.Nccl;
using Elastic.Units.Devices;
using Elastic.Units.Placement;
using Elastic.Units.Replicas;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Serialization;

namespace Elastic.Silo.Hosting;

public static class ElasticSiloBuilderExtensions
{
    /// <summary>
    /// Makes a silo an Elastic silo: its devices (one worker thread each), its data-plane listener, both
    /// advertised in silo metadata, device placement, the checkpoint store, job storage (memory unless the host
    /// adds another provider named <see cref="StorageNames.Jobs"/>), and the serializers for job records.
    /// </summary>
    public static ISiloBuilder AddElastic(this ISiloBuilder silo, ElasticSiloOptions options, string siloName)
    {
        ILogger? dataPlaneLog = null;
        var dataPlane = new DataPlane(IPAddress.Parse(options.DataPlaneBind), options.DataPlanePort, options.DataPlaneHost,
            refused: message => dataPlaneLog?.LogWarning("{Refusal}", message), tls: options.DataPlaneTls, advertisedPort: options.DataPlaneAdvertisedPort);
        var devices = new SiloDevices(options.Devices, siloName);
        var nccl = NcclSupport.Find(options.NcclPath);
        var inv = CultureInfo.InvariantCulture;
        var calibration = options.Calibrate && options.Devices.Count > 0 ? SiloCalibration.MeasureAsync(devices.TorchDevice(0), options.Devices.ThreadsPerDevice, dataPlane, options.DataPlaneTls).GetAwaiter().GetResult() : null;
        silo.UseSiloMetadata(new Dictionary<string, string>
        {
            [SiloMetadataKeys.Calibration] = calibration?.ToJson() ?? "",
            [SiloMetadataKeys.DeviceKind] = options.Devices.Kind,
            [SiloMetadataKeys.DeviceModel] = options.Devices.Model,
            [SiloMetadataKeys.Devices] = options.Devices.Count.ToString(inv),
            [SiloMetadataKeys.DeviceMemoryMiB] = options.Devices.MemoryMiB.ToString(inv),
            [SiloMetadataKeys.ThreadsPerDevice] = options.Devices.ThreadsPerDevice.ToString(inv),
            [SiloMetadataKeys.DataPlane] = dataPlane.Endpoint,
            [SiloMetadataKeys.Spot] = options.Spot ? "true" : "false",
            [SiloMetadataKeys.DeviceTransport] = options.Devices.Kind == "cuda" ? nccl.Describe() : "frames over the data plane (CPU devices)",
        });
        // Registered through factories so that the container disposes them when the silo stops: the
        // listener closes and peers' collectives fail fast instead of waiting for a timeout.
        silo.Services.AddSingleton(sp =>
        {
            dataPlaneLog = sp.GetRequiredService<ILoggerFactory>().CreateLogger<DataPlane>();
            return dataPlane;
        });
        silo.Services.AddSingleton(_ => devices);
        silo.Services.AddSingleton(nccl);
        silo.Services.AddSingleton<IBlobStore>(_ => (options.CheckpointConnectionString, options.CheckpointAccountUri) switch
        {
            ({ } connection, _) => AzureBlobStore.Connect(connection, options.CheckpointContainer),
            (_, { } account) => AzureBlobStore.Connect(account, options.CheckpointContainer),
            _ => new LocalDirectoryStore(options.CheckpointDirectory),
        });
        if (options.ClusterTls is { } clusterTls) silo.UseTls(o => ClusterTls.Configure(o, clusterTls));
        silo.Services.AddSingleton(Options.Create(options.Jobs));
        silo.Services.AddSingleton(Options.Create(options.Admission));
        silo.Services.AddSingleton(Options.Create(options.Scheduling));
        silo.Services.TryAddSingleton(TimeProvider.System);
        silo.Services.AddSingleton(sp => new SiloDrain(sp.GetRequiredService<IGrainFactory>(), sp.GetRequiredService<ILocalSiloDetails>(),
            options.DrainTimeout, sp.GetRequiredService<ILogger<SiloDrain>>()));
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SiloDrain>());
        if (options.Eviction.Watch)
            silo.Services.AddHostedService(sp => new EvictionWatcher(options.Eviction, sp.GetRequiredService<SiloDrain>(),
                sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<EvictionWatcher>>()));
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, JobRecoveryWatcher>();
        // Jobs and their units use the strongly consistent directory: a silo leaving must never leave a job with two coordinators,
        // or a unit with an empty second activation.
        // (Orleans marks it experimental; the default directory allows duplicate activations while membership changes.)
#pragma warning disable ORLEANSEXP003
        silo.AddDistributedGrainDirectory(JobGrain.Directory);
#pragma warning restore ORLEANSEXP003
        silo.AddIncomingGrainCallFilter<UnitExceptionFilter>();
        silo.AddIncomingGrainCallFilter<DeadCoordinatorFilter>();
        silo.AddPlacementDirector<DevicePlacement, DevicePlacementDirector>();
        silo.AddPlacementDirector<OnDemandPlacement, OnDemandPlacementDirector>();
        silo.Services.AddSerializer(s => s.AddElasticJobTypes());
        if (!silo.Services.Any(d => d.IsKeyedService && Equals(d.ServiceKey, StorageNames.Jobs)))
            silo.AddMemoryGrainStorage(StorageNames.Jobs);
        // Job coordinators keep a reminder while their job runs (JobOptions.WakePeriod); without a durable reminder table
        // (Azure Table or Redis, set by the host before this), one in memory.
        if (!silo.Services.Any(d => d.ServiceType == typeof(IReminderTable)))
            silo.UseInMemoryReminderService();
        silo.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromTicks(Math.Min(o.MinimumReminderPeriod.Ticks, options.Jobs.WakePeriod.Ticks)));
        silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(5));
        if (options.FastFailureDetection)
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                // A dead silo is declared in about a second (PLATFORM.md: 0.7-0.9 s after kill -9 on a local cluster) instead of
                // 10-15 s. Safe from false suspicion because tensor work runs on device threads, never on the Orleans scheduler.
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
            });
        return silo;
    }
}
