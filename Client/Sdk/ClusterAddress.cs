using System.Net;

namespace Elastic.Client;

/// <summary>
/// How to find a cluster's gateways: <c>localhost[:PORT]</c> (default port 30000), <c>static:HOST:PORT[,HOST:PORT...]</c>,
/// <c>azure:CONNECTION-STRING</c> or <c>azure:https://ACCOUNT.table.core.windows.net</c> (Azure Table membership, see
/// <see cref="AzureTables"/>; <c>azure:UseDevelopmentStorage=true</c> for Azurite), or
/// <c>redis:CONFIGURATION</c> (Redis membership).
/// </summary>
public sealed record ClusterAddress(string Kind, string Value, string ClusterId = "elastic", string ServiceId = "elastic")
{
    public static ClusterAddress Localhost(int port = 30000) => new("static", $"127.0.0.1:{port}");

    public static ClusterAddress Static(IEnumerable<IPEndPoint> gateways) => new("static", string.Join(",", gateways));

    /// <exception cref="ArgumentException">The text names no known kind, or its gateways are not host:port.</exception>
    public static ClusterAddress Parse(string text, string clusterId = "elastic", string serviceId = "elastic")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var colon = text.IndexOf(':');
        var (kind, value) = colon < 0 ? (text, "") : (text[..colon], text[(colon + 1)..]);
        var address = kind switch
        {
            "localhost" => Localhost(value.Length == 0 ? 30000 : int.TryParse(value, out var port) ? port : throw Invalid(text)),
            "static" or "azure" or "redis" when value.Length > 0 => new ClusterAddress(kind, value),
            _ => throw Invalid(text),
        };
        if (address.Kind == "static") _ = address.Gateways();
        return address with { ClusterId = clusterId, ServiceId = serviceId };
    }

    public IReadOnlyList<IPEndPoint> Gateways() => Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(g => IPEndPoint.TryParse(g, out var endpoint) && endpoint.Port > 0 ? endpoint : throw Invalid($"static:{Value}")).ToList();

    public override string ToString() => Kind switch
    {
        "azure" => AzureTables.IsEndpoint(Value, out _) ? $"azure:{Value}" : "azure:(connection string)",
        _ => $"{Kind}:{Value}",
    };

    private static ArgumentException Invalid(string text) =>
        new($"cluster '{text}' is not one of localhost[:PORT], static:HOST:PORT[,...], azure:CONNECTION-STRING, redis:CONFIGURATION");
}
