using System.Globalization;
using System.Net;
using Elastic.GrainInterfaces;
using Elastic.Grains.Devices;
using Elastic.Grains.Jobs;
using Elastic.Grains.Scheduling;
using Elastic.Jobs;
using Elastic.Security;
using Elastic.Service;
using Elastic.Silo.Eviction;
using Elastic.Training.Collectives;
using Microsoft.Extensions.Configuration;

namespace Elastic.Silo.Hosting;

/// <summary>
/// A silo's configuration, read from the <c>Elastic</c> section (appsettings, or environment variables such as
/// <c>Elastic__Clustering=azure</c>, <c>Elastic__Devices__Count=4</c>). Every invalid value is reported at once.
/// </summary>
public sealed record SiloSettings
{
    public string Name { get; init; } = Environment.MachineName;
    public string ClusterId { get; init; } = "elastic";
    public string ServiceId { get; init; } = "elastic";
    /// <summary><c>localhost</c> (a single silo, or the primary of a local group), <c>azure</c> (Azure Table membership) or <c>redis</c>.</summary>
    public string Clustering { get; init; } = "localhost";
    /// <summary>Azure Storage connection string (azure) or Redis configuration (redis).</summary>
    public string? ConnectionString { get; init; }
    public IPAddress AdvertisedIp { get; init; } = IPAddress.Loopback;
    public int SiloPort { get; init; } = 11111;
    public int GatewayPort { get; init; } = 30000;
    public ElasticSiloOptions Elastic { get; init; } = new();
    /// <summary>The HTTP API this silo serves (Elastic:Api:Urls set), or null.</summary>
    public ApiOptions? Api { get; init; }
    /// <summary>The Kubernetes pod this silo runs in (it then uses Orleans' Kubernetes hosting), or null.</summary>
    public PodEnvironment? Pod { get; init; }
    /// <summary>Where the silo answers Kubernetes' probes and its preStop drain (<see cref="SiloProbes"/>); 0: not at all.</summary>
    public int ProbesPort { get; init; }

    /// <summary>What a silo may take to stop after its drain (deactivations, leaving membership): the host's shutdown
    /// timeout is the drain timeout plus this, and a pod's grace period must be at least as long.</summary>
    public static readonly TimeSpan StopAllowance = TimeSpan.FromSeconds(15);

    public TimeSpan ShutdownTimeout => Elastic.DrainTimeout + StopAllowance;

    /// <param name="environment">The process's environment variables (a test passes its own): how a Kubernetes pod is detected.</param>
    public static SiloSettings Read(IConfiguration root, Func<string, string?>? environment = null)
    {
        var section = root.GetSection("Elastic");
        var errors = new List<string>();
        var pod = PodEnvironment.Detect(environment ?? Environment.GetEnvironmentVariable, errors);
        // In a pod, the silo is named and addressed after it (Orleans' Kubernetes hosting requires the pod's name and labels).
        string PodValue(string key, string? fromPod, string fallback)
        {
            if (pod is null) return Text(key, fallback);
            if (section[key] is { Length: > 0 } set && set != fromPod)
                errors.Add($"Elastic:{key} = {set}: in a Kubernetes pod it is {fromPod} (from the pod); leave it unset");
            return fromPod ?? fallback;
        }
        string Text(string key, string fallback) => section[key] is { Length: > 0 } v ? v : fallback;
        int Int(string key, int fallback, int min, int max)
        {
            var text = section[key];
            if (string.IsNullOrEmpty(text)) return fallback;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max) return value;
            errors.Add($"Elastic:{key} = {text}: must be an integer in [{min}, {max}]");
            return fallback;
        }

        PathRoots Roots(string key)
        {
            var roots = (section[key] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var root in roots.Where(r => !Path.IsPathFullyQualified(r)))
                errors.Add($"Elastic:{key} = {root}: must be an absolute folder (several are separated by ';')");
            return new PathRoots(roots.Where(Path.IsPathFullyQualified).ToList());
        }

        var clustering = Text("Clustering", "localhost");
        if (clustering is not ("localhost" or "azure" or "redis")) errors.Add($"Elastic:Clustering = {clustering}: must be localhost, azure or redis");
        if (pod is not null && clustering == "localhost") errors.Add($"Elastic:Clustering = {clustering}: silos in Kubernetes pods need shared membership, azure or redis");
        var connection = section["ConnectionString"];
        if (clustering is "azure" or "redis" && string.IsNullOrWhiteSpace(connection)) errors.Add($"Elastic:ConnectionString: required for Elastic:Clustering = {clustering}");
        var advertised = Text("AdvertisedIp", pod?.Ip.ToString() ?? "127.0.0.1");
        if (!IPAddress.TryParse(advertised, out var ip)) errors.Add($"Elastic:AdvertisedIp = {advertised}: not an IP address");
        var kind = Text("Devices:Kind", "auto");
        if (kind is not ("auto" or "cpu" or "cuda")) errors.Add($"Elastic:Devices:Kind = {kind}: must be auto, cpu or cuda");
        var accountText = section["Checkpoints:AccountUri"];
        Uri? account = null;
        if (!string.IsNullOrEmpty(accountText) && (!Uri.TryCreate(accountText, UriKind.Absolute, out account) || account.Scheme != Uri.UriSchemeHttps))
            errors.Add($"Elastic:Checkpoints:AccountUri = {accountText}: must be an https URI such as https://ACCOUNT.blob.core.windows.net");
        if (account is not null && !string.IsNullOrEmpty(section["Checkpoints:ConnectionString"]))
            errors.Add("Elastic:Checkpoints:AccountUri and Elastic:Checkpoints:ConnectionString: set one, not both");
        var imdsText = Text("Eviction:Endpoint", new EvictionOptions().Endpoint.ToString());
        if (!Uri.TryCreate(imdsText, UriKind.Absolute, out var imds) || imds.Scheme is not ("http" or "https"))
            errors.Add($"Elastic:Eviction:Endpoint = {imdsText}: must be an http(s) URI");
        var watchText = Text("Eviction:Watch", "false");
        if (!bool.TryParse(watchText, out var watch)) errors.Add($"Elastic:Eviction:Watch = {watchText}: must be true or false");
        var settings = new SiloSettings
        {
            Name = PodValue("Name", pod?.Name, Environment.MachineName),
            ClusterId = PodValue("ClusterId", pod?.ClusterId, "elastic"),
            ServiceId = PodValue("ServiceId", pod?.ServiceId, "elastic"),
            Clustering = clustering,
            ConnectionString = connection,
            AdvertisedIp = ip ?? IPAddress.Loopback,
            SiloPort = Int("SiloPort", 11111, 1, 65535),
            GatewayPort = Int("GatewayPort", 30000, 0, 65535),
            Elastic = new ElasticSiloOptions
            {
                Devices = DeviceDiscovery.Resolve(kind, new SiloDeviceOptions
                {
                    Count = Int("Devices:Count", 2, 1, 1024),
                    MemoryMiB = Int("Devices:MemoryMiB", 4096, 1, int.MaxValue),
                    ThreadsPerDevice = Int("Devices:ThreadsPerDevice", 1, 1, 1024),
                }),
                // In a pod: listen on every interface, peers dial the pod's IP.
                DataPlaneBind = Text("DataPlane:Bind", pod is null ? "127.0.0.1" : "0.0.0.0"),
                DataPlaneHost = section["DataPlane:Host"] is { Length: > 0 } host ? host : pod?.Ip.ToString(),
                DataPlanePort = Int("DataPlane:Port", 0, 0, 65535),
                DataPlaneAdvertisedPort = Int("DataPlane:AdvertisedPort", 0, 0, 65535) is > 0 and var advertisedPort ? advertisedPort : null,
                DataPlaneTls = ReadCertificate(section, "DataPlane:Tls", errors) is { } dataPlane ? new DataPlaneTls(dataPlane) : null,
                ClusterTls = ReadCertificate(section, "Tls", errors),
                CheckpointDirectory = Text("Checkpoints:Directory", "checkpoints"),
                CheckpointConnectionString = section["Checkpoints:ConnectionString"],
                CheckpointAccountUri = account,
                Jobs = new JobOptions
                {
                    MinDwell = TimeSpan.FromSeconds(Int("Jobs:MinDwellSeconds", 10, 0, 86_400)),
                    JoinSettle = TimeSpan.FromSeconds(Int("Jobs:JoinSettleSeconds", 2, 0, 3_600)),
                    CollectiveTimeout = TimeSpan.FromSeconds(Int("Jobs:CollectiveTimeoutSeconds", 60, 1, 3_600)),
                },
                Admission = new AdmissionOptions { DataRoots = Roots("Jobs:DataRoots"), OutputRoots = Roots("Jobs:OutputRoots") },
                Scheduling = ReadScheduling(section.GetSection("Scheduling"), errors),
                DrainTimeout = TimeSpan.FromSeconds(Int("DrainTimeoutSeconds", 20, 0, 3_600)),
                FastFailureDetection = Text("FastFailureDetection", "true") != "false",
                Spot = Text("Spot", "false") == "true",
                Calibrate = Text("Calibrate", "true") != "false",
                NcclPath = section["Nccl:Path"] is { Length: > 0 } ncclPath ? ncclPath : null,
                Eviction = new EvictionOptions
                {
                    Watch = watch,
                    Endpoint = imds ?? new EvictionOptions().Endpoint,
                    VmName = section["Eviction:VmName"] is { Length: > 0 } vm ? vm : null,
                },
                CheckpointContainer = Text("Checkpoints:Container", "checkpoints"),
            },
        };
        settings = settings with { Api = ApiSettings.Read(section.GetSection("Api"), errors), Pod = pod, ProbesPort = Int("Probes:Port", 0, 0, 65535) };
        if (!IPAddress.TryParse(settings.Elastic.DataPlaneBind, out _)) errors.Add($"Elastic:DataPlane:Bind = {settings.Elastic.DataPlaneBind}: not an IP address");
        if (errors.Count > 0) throw new InvalidOperationException("invalid silo configuration:" + string.Concat(errors.Select(e => Environment.NewLine + "  - " + e)));
        return settings;
    }

    /// <summary>A certificate and its trust from <c>Elastic:KEY:Certificate</c>, <c>CertificatePassword</c> and <c>Trusted</c>; null when not set.</summary>
    private static ClusterCertificate? ReadCertificate(IConfigurationSection elastic, string key, List<string> errors)
    {
        var tls = elastic.GetSection(key);
        if (string.IsNullOrEmpty(tls["Certificate"]))
        {
            if (!string.IsNullOrEmpty(tls["Trusted"])) errors.Add($"Elastic:{key}:Trusted: set with Elastic:{key}:Certificate, or not at all");
            return null;
        }
        try
        {
            return ClusterCertificate.Load(tls["Certificate"]!, tls["CertificatePassword"], tls["Trusted"] is { Length: > 0 } trusted ? trusted : null);
        }
        catch (ArgumentException e)
        {
            // The message names the file, never the password.
            errors.Add($"Elastic:{key}: {e.Message}");
            return null;
        }
    }

    private static SchedulingOptions ReadScheduling(IConfigurationSection scheduling, List<string> errors)
    {
        int? Quota(string key, string? text)
        {
            if (string.IsNullOrEmpty(text)) return null;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var devices) && devices >= 1) return devices;
            errors.Add($"Elastic:Scheduling:{key} = {text}: must be a positive number of devices");
            return null;
        }
        var tenants = new Dictionary<string, int>();
        foreach (var entry in scheduling.GetSection("TenantDevices").GetChildren())
        {
            if (Tenants.Problem(entry.Key) is { } problem) errors.Add($"Elastic:Scheduling:TenantDevices:{entry.Key}: {problem}");
            else if (Quota($"TenantDevices:{entry.Key}", entry.Value) is { } devices) tenants[entry.Key] = devices;
        }
        return new SchedulingOptions { TenantDevices = tenants, DefaultTenantDevices = Quota("DefaultTenantDevices", scheduling["DefaultTenantDevices"]) };
    }
}
