using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Elastic.Client;
using Elastic.Service;
using Elastic.Silo.Hosting;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Configuration;

namespace Elastic.Tests.Deployment;

/// <summary>
/// The Kubernetes manifests (infra/k8s): every overlay rendered by <c>kubectl kustomize</c> as <c>kubectl apply -k</c> renders it,
/// read strictly with Kubernetes' object model (KubernetesClient), and checked against the silo's and the API's own settings:
/// the silo accepts the pod's environment, ports and probes are the ones it serves, the grace period covers its drain and
/// stop, nothing secret is inline.
/// </summary>
public sealed partial class ManifestTests
{
    private static readonly string K8s = Path.Combine(RepoPaths.Root, "infra", "k8s");

    public static TheoryData<string> Overlays => new() { "local", "aks-spot-gpu" };

    [Fact]
    public void Every_manifest_file_parses_strictly_as_kubernetes_objects()
    {
        var files = Directory.GetFiles(K8s, "*.yaml", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != "kustomization.yaml").ToList();
        Assert.True(files.Count >= 10, $"{files.Count} manifest files");
        foreach (var file in files) Assert.NotEmpty(Load(File.ReadAllText(file), file));
    }

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task The_silo_accepts_its_pod_and_serves_the_ports_probes_and_drain_the_manifest_names(string overlay)
    {
        var objects = Load(await Render(overlay), overlay);
        var deployment = Named<V1Deployment>(objects, "elastic-silo");
        var pod = deployment.Spec.Template;
        var silo = pod.Spec.Containers.Single(c => c.Name == "silo");
        var variables = Variables(silo, pod, deployment.Metadata.NamespaceProperty, objects);
        variables["KUBERNETES_SERVICE_HOST"] = "10.0.0.1";
        var kind = variables.GetValueOrDefault("Elastic__Devices__Kind");
        // This machine has no GPU: the device kind is checked against the GPU limit below, the rest as the silo reads it.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(variables.Where(v => v.Key.StartsWith("Elastic__", StringComparison.Ordinal))
            .Select(v => KeyValuePair.Create(v.Key.Replace("__", ":"), (string?)(v.Key == "Elastic__Devices__Kind" ? "cpu" : v.Value)))).Build();
        var settings = SiloSettings.Read(configuration, name => variables.GetValueOrDefault(name));

        Assert.Equal(variables["POD_NAME"], settings.Name);
        Assert.Equal(variables["POD_IP"], settings.Elastic.DataPlaneHost);
        Assert.Equal((pod.Metadata.Labels["orleans/serviceId"], pod.Metadata.Labels["orleans/clusterId"]), (settings.ServiceId, settings.ClusterId));
        Assert.Equal("azure", settings.Clustering);
        Assert.Equal(
            new Dictionary<string, int> { ["silo"] = settings.SiloPort, ["gateway"] = settings.GatewayPort, ["data-plane"] = settings.Elastic.DataPlanePort, ["probes"] = settings.ProbesPort },
            silo.Ports.ToDictionary(p => p.Name, p => p.ContainerPort));
        Assert.Equal(silo.Ports.Select(p => p.ContainerPort).Order(), Exposed("silo.Dockerfile"));
        Assert.Equal((ServiceDefaults.LivePath, "probes"), (silo.StartupProbe.HttpGet.Path, silo.StartupProbe.HttpGet.Port.Value));
        Assert.Equal((ServiceDefaults.LivePath, "probes"), (silo.LivenessProbe.HttpGet.Path, silo.LivenessProbe.HttpGet.Port.Value));
        Assert.Equal((ServiceDefaults.ReadyPath, "probes"), (silo.ReadinessProbe.HttpGet.Path, silo.ReadinessProbe.HttpGet.Port.Value));
        Assert.Equal((SiloProbes.DrainPath, "probes"), (silo.Lifecycle.PreStop.HttpGet.Path, silo.Lifecycle.PreStop.HttpGet.Port.Value));
        Assert.True(pod.Spec.TerminationGracePeriodSeconds >= settings.ShutdownTimeout.TotalSeconds,
            $"terminationGracePeriodSeconds {pod.Spec.TerminationGracePeriodSeconds} < drain {settings.Elastic.DrainTimeout.TotalSeconds} s + stop {SiloSettings.StopAllowance.TotalSeconds} s");
        Assert.Equal(("true", $"{settings.ProbesPort}", ServiceDefaults.MetricsPath),
            (pod.Metadata.Annotations["prometheus.io/scrape"], pod.Metadata.Annotations["prometheus.io/port"], pod.Metadata.Annotations["prometheus.io/path"]));
        Assert.Matches("(^|/)elastic-silo:", silo.Image);

        // Orleans' Kubernetes hosting lists and deletes pods of dead silos: the silo's account may, in its namespace.
        var binding = objects.OfType<V1RoleBinding>().Single(b => b.Subjects.Any(s => s.Kind == "ServiceAccount" && s.Name == pod.Spec.ServiceAccountName));
        var verbs = Named<V1Role>(objects, binding.RoleRef.Name).Rules.Where(r => r.Resources.Contains("pods")).SelectMany(r => r.Verbs).ToHashSet();
        Assert.Subset(verbs, new HashSet<string> { "get", "list", "watch", "delete" });
        Assert.Contains(objects.OfType<V1ServiceAccount>(), a => a.Metadata.Name == pod.Spec.ServiceAccountName);

        var gpus = silo.Resources.Limits is { } limits && limits.TryGetValue("nvidia.com/gpu", out var limit) ? limit : null;
        if (overlay == "aks-spot-gpu")
        {
            Assert.Equal("cuda", kind);
            Assert.True(gpus?.ToInt32() >= 1, "a CUDA silo must ask for the node's GPUs");
            Assert.True(settings.Elastic.Spot && settings.Elastic.Eviction.Watch);
            Assert.Contains(pod.Spec.Tolerations, t => t.Key == "kubernetes.azure.com/scalesetpriority" && t.Value == "spot" && t.Effect == "NoSchedule");
            Assert.Contains(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms.SelectMany(t => t.MatchExpressions),
                e => e.Key == "kubernetes.azure.com/scalesetpriority" && e.Values.SequenceEqual(["spot"]));
            Assert.True(AzureTables.IsEndpoint(settings.ConnectionString!, out _) && settings.Elastic.CheckpointAccountUri is not null, "AKS storage goes through workload identity");
        }
        else
        {
            Assert.Equal("cpu", kind);
            Assert.Null(gpus);
        }
    }

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task The_api_serves_where_its_service_and_probes_point_and_finds_the_cluster(string overlay)
    {
        var objects = Load(await Render(overlay), overlay);
        var deployment = Named<V1Deployment>(objects, "elastic-api");
        var api = deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "api");
        Assert.Equal("serve", api.Args[0]);
        var urls = new Uri(api.Args[api.Args.IndexOf("--urls") + 1]);
        var http = api.Ports.Single(p => p.Name == "http");
        Assert.Equal(urls.Port, http.ContainerPort);
        Assert.Equal([http.ContainerPort], Exposed("api.Dockerfile"));
        Assert.Equal((ServiceDefaults.LivePath, "http"), (api.LivenessProbe.HttpGet.Path, api.LivenessProbe.HttpGet.Port.Value));
        Assert.Equal((ServiceDefaults.ReadyPath, "http"), (api.ReadinessProbe.HttpGet.Path, api.ReadinessProbe.HttpGet.Port.Value));
        var service = Named<V1Service>(objects, "elastic-api");
        Assert.All(service.Spec.Ports, p => Assert.Equal("http", p.TargetPort.Value));
        Assert.Subset(deployment.Spec.Template.Metadata.Labels.ToHashSet(), service.Spec.Selector.ToHashSet());
        var variables = Variables(api, deployment.Spec.Template, deployment.Metadata.NamespaceProperty, objects);
        Assert.Equal("azure", ClusterAddress.Parse(variables["ELASTIC_CLUSTER"]).Kind);
        Assert.Matches("(^|/)elastic-api:", api.Image);
    }

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task Nothing_secret_is_inline_and_budgets_and_identities_match_their_pods(string overlay)
    {
        var objects = Load(await Render(overlay), overlay);
        var deployments = objects.OfType<V1Deployment>().ToList();
        foreach (var deployment in deployments)
        foreach (var container in deployment.Spec.Template.Spec.Containers)
        {
            Assert.All(container.Env ?? [], e => Assert.False(e.Value is not null && SecretLooking().IsMatch(e.Value), $"{deployment.Metadata.Name}/{container.Name}: {e.Name} holds a secret inline"));
            Variables(container, deployment.Spec.Template, deployment.Metadata.NamespaceProperty, objects);
        }
        Assert.All(objects.OfType<V1ConfigMap>(), m => Assert.DoesNotContain(m.Data.Values, v => SecretLooking().IsMatch(v)));
        // The only Secret these files make is Azurite's development account (its key is published); real accounts use workload identity.
        var secrets = objects.OfType<V1Secret>().ToList();
        if (overlay == "aks-spot-gpu") Assert.Empty(secrets);
        Assert.All(secrets.SelectMany(s => s.Data.Values).Select(Encoding.UTF8.GetString),
            v => Assert.Contains($"AccountName=devstoreaccount1;AccountKey={AzuriteProcess.DevelopmentAccountKey};", v));

        foreach (var budget in objects.OfType<V1PodDisruptionBudget>())
            Assert.Single(deployments, d => budget.Spec.Selector.MatchLabels.All(l => Value(d.Spec.Template.Metadata.Labels, l.Key) == l.Value));
        foreach (var deployment in deployments.Where(d => Value(d.Spec.Template.Metadata.Labels, "azure.workload.identity/use") == "true"))
        {
            var account = Named<V1ServiceAccount>(objects, deployment.Spec.Template.Spec.ServiceAccountName);
            Assert.True(Guid.TryParse(Value(account.Metadata.Annotations, "azure.workload.identity/client-id"), out _),
                $"{deployment.Metadata.Name} uses workload identity: its service account needs the identity's client id");
        }
    }

    /// <summary>Each environment variable's value as the pod would see it: literals with earlier <c>$(VAR)</c> references
    /// expanded, downward-API fields from the pod, and references to Secrets and ConfigMaps that must exist in the render.</summary>
    private static Dictionary<string, string> Variables(V1Container container, V1PodTemplateSpec pod, string ns, IList<object> objects)
    {
        var values = new Dictionary<string, string>();
        foreach (var variable in container.Env ?? [])
        {
            values[variable.Name] = variable.ValueFrom switch
            {
                null => Reference().Replace(variable.Value ?? "", m => values.TryGetValue(m.Groups[1].Value, out var earlier)
                    ? earlier : throw new Xunit.Sdk.XunitException($"{container.Name}: {variable.Name} refers to $({m.Groups[1].Value}), not defined before it")),
                { FieldRef.FieldPath: var field } => field switch
                {
                    "metadata.name" => "elastic-silo-5d8c7f9b6-x2x4q",
                    "metadata.namespace" => ns,
                    "status.podIP" => "10.244.1.17",
                    _ when LabelField().Match(field) is { Success: true } label => pod.Metadata.Labels[label.Groups[1].Value],
                    _ => throw new Xunit.Sdk.XunitException($"{container.Name}: {variable.Name} reads field {field}"),
                },
                { SecretKeyRef: { } secret } => objects.OfType<V1Secret>().FirstOrDefault(s => s.Metadata.Name == secret.Name)?.Data.TryGetValue(secret.Key, out var bytes) == true
                    ? Encoding.UTF8.GetString(bytes)
                    : secret.Optional == true ? "" : throw new Xunit.Sdk.XunitException($"{container.Name}: {variable.Name} needs secret {secret.Name}/{secret.Key}, which is not made and not optional"),
                { ConfigMapKeyRef: { } map } => Named<V1ConfigMap>(objects, map.Name).Data[map.Key],
                _ => throw new Xunit.Sdk.XunitException($"{container.Name}: {variable.Name} has a source the test does not know"),
            };
        }
        return values;
    }

    private static async Task<string> Render(string overlay)
    {
        var info = new ProcessStartInfo(Kubectl.Path!, ["kustomize", Path.Combine(K8s, "overlays", overlay)]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var kubectl = Process.Start(info)!;
        var output = kubectl.StandardOutput.ReadToEndAsync();
        var errors = kubectl.StandardError.ReadToEndAsync();
        await kubectl.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(kubectl.ExitCode == 0, $"kubectl kustomize {overlay}: {await errors}");
        return await output;
    }

    /// <summary>Every document as its typed object; strict: an unknown kind or field fails, naming the source.</summary>
    private static List<object> Load(string yaml, string source)
    {
        try
        {
            return KubernetesYaml.LoadAllFromString(yaml, strict: true);
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{source}: {e.Message}");
        }
    }

    private static T Named<T>(IList<object> objects, string name) where T : IKubernetesObject<V1ObjectMeta> =>
        objects.OfType<T>().SingleOrDefault(o => o.Metadata.Name == name) ?? throw new Xunit.Sdk.XunitException($"no {typeof(T).Name} named {name}");

    private static string? Value(IDictionary<string, string>? map, string key) => map is not null && map.TryGetValue(key, out var value) ? value : null;

    /// <summary>The ports an image's Dockerfile exposes.</summary>
    private static IEnumerable<int> Exposed(string dockerfile) =>
        File.ReadLines(Path.Combine(RepoPaths.Root, "infra", "images", dockerfile)).Where(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal))
            .SelectMany(l => l[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse).Order();

    [GeneratedRegex(@"AccountKey=|SharedAccessSignature=|[?&]sig=|ek_[0-9a-f]{12}_|-----BEGIN|Password=", RegexOptions.IgnoreCase)]
    private static partial Regex SecretLooking();

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex Reference();

    [GeneratedRegex(@"^metadata\.labels\['([^']+)'\]$")]
    private static partial Regex LabelField();
}
