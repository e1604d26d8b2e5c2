using System.CommandLine;
using Elastic.Client;

namespace Elastic.Cli.Commands;

/// <summary>The <c>--cluster</c> option shared by the commands that talk to a running cluster.</summary>
internal static class ClusterConnection
{
    public static Option<string> Option() => new("--cluster")
    {
        Description = "Cluster to use: localhost[:PORT], static:HOST:PORT[,...], azure:CONNECTION-STRING or redis:CONFIGURATION (default: $ELASTIC_CLUSTER, else localhost)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ELASTIC_CLUSTER") is { Length: > 0 } env ? env : "localhost",
    };

    public static async Task<ElasticConnection> Connect(ParseResult parse, Option<string> option, CancellationToken cancellation)
    {
        var text = parse.GetValue(option)!;
        ClusterAddress address;
        try
        {
            address = ClusterAddress.Parse(text);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--cluster {text}: {e.Message}");
        }
        return await ElasticConnection.ConnectAsync(address, cancellation: cancellation);
    }
}
