using System.CommandLine;
using Elastic.Client;

namespace Elastic.Cli.Commands;

/// <summary>The commands that talk to a running cluster: each takes <c>--cluster</c>, connects, and runs against the SDK.</summary>
internal static class ClusterConnection
{
    public delegate Task<int> Action(ParseResult parse, CliOutput console, ElasticClient client, CancellationToken cancellation);

    public static Command Command(string name, string description, Symbol[] symbols, Action action)
    {
        var cluster = new Option<string>("--cluster")
        {
            Description = "Cluster to use: localhost[:PORT], static:HOST:PORT[,...], azure:CONNECTION-STRING or redis:CONFIGURATION (default: $ELASTIC_CLUSTER, else localhost)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ELASTIC_CLUSTER") is { Length: > 0 } env ? env : "localhost",
        };
        var command = new Command(name, description);
        foreach (var symbol in symbols)
        {
            if (symbol is Argument argument) command.Add(argument);
            else command.Add((Option)symbol);
        }
        command.Add(cluster);
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            await using var connection = await Connect(parse.GetValue(cluster)!, cancellation);
            return await action(parse, console, connection.Client, cancellation);
        }));
        return command;
    }

    private static async Task<ElasticConnection> Connect(string text, CancellationToken cancellation)
    {
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
