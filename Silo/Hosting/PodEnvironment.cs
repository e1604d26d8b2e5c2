using System.Net;

namespace Elastic.Silo.Hosting;

/// <summary>
/// The Kubernetes pod a silo runs in: <c>KUBERNETES_SERVICE_HOST</c> (set in every pod) and <c>POD_NAME</c> say it is
/// one; the manifests (infra/k8s) pass the pod's name, namespace and IP through the downward API and the pod's
/// <c>orleans/clusterId</c> and <c>orleans/serviceId</c> labels as <c>ORLEANS_CLUSTER_ID</c> and
/// <c>ORLEANS_SERVICE_ID</c>, the variables Orleans' Kubernetes hosting reads.
/// </summary>
public sealed record PodEnvironment(string Name, string Namespace, IPAddress Ip, string ClusterId, string ServiceId)
{
    public static readonly string[] Variables = ["POD_NAME", "POD_NAMESPACE", "POD_IP", "ORLEANS_CLUSTER_ID", "ORLEANS_SERVICE_ID"];

    /// <summary>The pod, null outside one; each missing or bad variable is added to <paramref name="errors"/>.</summary>
    public static PodEnvironment? Detect(Func<string, string?> variable, List<string> errors)
    {
        if (string.IsNullOrEmpty(variable("KUBERNETES_SERVICE_HOST")) || string.IsNullOrEmpty(variable("POD_NAME"))) return null;
        foreach (var missing in Variables.Where(v => string.IsNullOrWhiteSpace(variable(v))))
            errors.Add($"{missing}: not set, but this silo runs in a Kubernetes pod (POD_NAME = {variable("POD_NAME")}); the manifests in infra/k8s set it");
        var ipText = variable("POD_IP");
        IPAddress? ip = null;
        if (!string.IsNullOrWhiteSpace(ipText) && !IPAddress.TryParse(ipText, out ip)) errors.Add($"POD_IP = {ipText}: not an IP address");
        return new PodEnvironment(variable("POD_NAME")!, variable("POD_NAMESPACE") ?? "", ip ?? IPAddress.Loopback,
            variable("ORLEANS_CLUSTER_ID") ?? "", variable("ORLEANS_SERVICE_ID") ?? "");
    }
}
