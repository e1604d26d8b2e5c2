using Elastic.Grains.Devices;
using Elastic.Grains.Jobs;
using Elastic.Grains.Scheduling;
using Elastic.Security;
using Elastic.Silo.Eviction;
using Elastic.Training.Collectives;

namespace Elastic.Silo.Hosting;

/// <summary>What an Elastic silo offers and where its data plane listens.</summary>
public sealed record ElasticSiloOptions
{
    public SiloDeviceOptions Devices { get; init; } = new();
    /// <summary>Address the data plane listens on.</summary>
    public string DataPlaneBind { get; init; } = "127.0.0.1";
    /// <summary>Host name or address peers dial; defaults to the bind address.</summary>
    public string? DataPlaneHost { get; init; }
    /// <summary>0 picks a free port.</summary>
    public int DataPlanePort { get; init; }
    /// <summary>Port peers dial when it differs from the one listened on (a NAT, a proxy); null: the bound port.</summary>
    public int? DataPlaneAdvertisedPort { get; init; }
    /// <summary>Orleans traffic (silo to silo, clients to the gateway) inside mutual TLS; null: in the clear (a private network).</summary>
    public ClusterCertificate? ClusterTls { get; init; }
    /// <summary>Data-plane links inside mutual TLS (every silo of a cluster alike); null: in the clear, authenticated by each generation's secret.</summary>
    public DataPlaneTls? DataPlaneTls { get; init; }
    public JobOptions Jobs { get; init; } = new();
    /// <summary>Where submitted jobs may read data and write models.</summary>
    public AdmissionOptions Admission { get; init; } = new();
    /// <summary>How tenants share the devices: their quotas.</summary>
    public SchedulingOptions Scheduling { get; init; } = new();
    /// <summary>Tune membership to declare a dead silo in about a second (see docs/cluster.md); off: Orleans defaults (10-15 s).</summary>
    public bool FastFailureDetection { get; init; } = true;
    /// <summary>This silo runs on spot (evictable) capacity: it carries devices, and coordinators prefer other silos.</summary>
    public bool Spot { get; init; }
    /// <summary>Measure the devices and the data plane's links at start (about a second, once per process) and advertise them to the planner; off: the published profiles' figures.</summary>
    public bool Calibrate { get; init; } = true;
    /// <summary>The NCCL library GPU collectives between processes use; null: libnccl.so.2 as CUDA libtorch loads it. Without one they send frames over the data plane.</summary>
    public string? NcclPath { get; init; }
    /// <summary>Watching Azure Scheduled Events for this VM's eviction.</summary>
    public EvictionOptions Eviction { get; init; } = new();
    /// <summary>How long a stopping or evicted silo waits for jobs to move off it before it stops anyway.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>Checkpoint store: a local directory (every silo of a cluster must see the same one)...</summary>
    public string CheckpointDirectory { get; init; } = "checkpoints";
    /// <summary>...or, when set, this Azure Storage account (Azurite locally), in <see cref="CheckpointContainer"/>.</summary>
    public string? CheckpointConnectionString { get; init; }
    /// <summary>...or this account URI, signed in with DefaultAzureCredential (managed or workload identity in production).</summary>
    public Uri? CheckpointAccountUri { get; init; }
    public string CheckpointContainer { get; init; } = "checkpoints";
}
