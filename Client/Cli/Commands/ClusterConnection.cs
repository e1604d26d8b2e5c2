using System.CommandLine;
using Elastic.Client;
using Elastic.Client.Http;

namespace Elastic.Cli.Commands;

/// <summary>
/// The commands that talk to a running cluster: each connects through the HTTP API (<c>--api URL</c>, a key from
/// ELASTIC_API_KEY) or, inside the cluster's network, as a trusted Orleans client (<c>--cluster</c>), and runs against the SDK.
/// </summary>
internal static class ClusterConnection
{
    public delegate Task<int> Action(ParseResult parse, CliOutput console, IElasticClient client, CancellationToken cancellation);

    public const string KeyVariable = "ELASTIC_API_KEY";

    public static Command Command(string name, string description, Symbol[] symbols, Action action)
    {
        var cluster = ClusterOption();
        var api = ApiOption();
        var command = WithSymbols(new Command(name, description), symbols);
        command.Add(cluster);
        command.Add(api);
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, console =>
            With(parse, cluster, api, client => action(parse, console, client, cancellation), cancellation)));
        return command;
    }

    /// <summary>Runs <paramref name="use"/> with a client of the API (<paramref name="api"/> given) or of the cluster, closed after.</summary>
    public static async Task<T> With<T>(ParseResult parse, Option<string> cluster, Option<string?> api, Func<IElasticClient, Task<T>> use, CancellationToken cancellation)
    {
        if (parse.GetValue(api) is { } url)
        {
            using var client = ApiClient(url);
            return await use(client);
        }
        await using var connection = await Connect(parse.GetValue(cluster)!, cancellation);
        return await use(connection.Client);
    }

    /// <summary><paramref name="command"/> with <paramref name="symbols"/> (arguments and options) added in order.</summary>
    public static Command WithSymbols(Command command, Symbol[] symbols)
    {
        foreach (var symbol in symbols)
        {
            if (symbol is Argument argument) command.Add(argument);
            else command.Add((Option)symbol);
        }
        return command;
    }

    public static Option<string> ClusterOption() => new("--cluster")
    {
        Description = "Cluster to use: localhost[:PORT], static:HOST:PORT[,...], azure:CONNECTION-STRING or redis:CONFIGURATION (default: $ELASTIC_CLUSTER, else localhost)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ELASTIC_CLUSTER") is { Length: > 0 } env ? env : "localhost",
    };

    public static Option<string?> ApiOption() => new("--api")
    {
        Description = $"The HTTP API to use instead of an Orleans connection, e.g. http://127.0.0.1:8080 (default: $ELASTIC_API); the key comes from ${KeyVariable}",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ELASTIC_API") is { Length: > 0 } env ? env : null,
    };

    /// <summary>A client of the API at <paramref name="api"/> with the key in ELASTIC_API_KEY (never a command-line argument: those show in process lists).</summary>
    public static ElasticApiClient ApiClient(string? url)
    {
        if (url is null) throw new CliException("--api URL is required (or set ELASTIC_API), e.g. --api http://127.0.0.1:8080");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var api) || api.Scheme is not ("http" or "https")) throw new CliException($"--api {url}: must be an http or https URL");
        var key = Environment.GetEnvironmentVariable(KeyVariable);
        if (string.IsNullOrWhiteSpace(key)) throw new CliException($"--api {api}: set {KeyVariable} to an API key (an admin creates one with `elastic keys create`)");
        return ElasticApiClient.Create(api, key.Trim());
    }

    public static async Task<ElasticConnection> Connect(string text, CancellationToken cancellation)
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
        Security.ClusterCertificate? tls;
        try
        {
            tls = ClusterTls.FromEnvironment();
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{ClusterTls.CertificateVariable}: {e.Message}");
        }
        return await ElasticConnection.ConnectAsync(address, cancellation: cancellation, tls: tls);
    }
}
