using System.CommandLine;
using Elastic.Service;
using Microsoft.Extensions.Configuration;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic serve</c>: the HTTP API as a process of its own, an Orleans client of the cluster (production: silos train,
/// API processes face users and scale apart from them). Its settings are a silo's <c>Elastic:Api:*</c>, from environment
/// variables (<c>Elastic__Api__BootstrapAdminKey</c>, <c>Elastic__Api__Jwt__Authority</c>, ...), so secrets never appear
/// on a command line.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var cluster = ClusterConnection.ClusterOption();
        var urls = new Option<string>("--urls")
        {
            Description = "Where the API listens, e.g. http://0.0.0.0:8080 (default: $Elastic__Api__Urls, else http://127.0.0.1:8080)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("Elastic__Api__Urls") is { Length: > 0 } env ? env : "http://127.0.0.1:8080",
        };
        var command = new Command("serve", "Serve the HTTP API and the dashboard in front of a cluster, as an Orleans client (settings: Elastic__Api__* variables)") { cluster, urls };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var configuration = new ConfigurationBuilder().AddEnvironmentVariables()
                .AddInMemoryCollection(new Dictionary<string, string?> { ["Elastic:Api:Urls"] = parse.GetValue(urls) }).Build();
            var errors = new List<string>();
            var options = ApiSettings.Read(configuration.GetSection("Elastic:Api"), errors)!;
            if (errors.Count > 0) throw new CliException("invalid API settings:" + string.Concat(errors.Select(e => Environment.NewLine + "  - " + e)));
            using var interrupts = new Interrupts(cancellation, console.Plain.WriteLine, "stopping the API");
            await using var connection = await ClusterConnection.Connect(parse.GetValue(cluster)!, cancellation);
            await using var api = await ApiServer.StartAsync(connection.Cluster, options, cancellation: cancellation);
            console.Plain.WriteLine($"API {api.Address} in front of {parse.GetValue(cluster)}; dashboard at {api.Address}dashboard/");
            if (options.BootstrapAdminKey is null && !options.Jwt.Enabled)
                console.Plain.WriteLine("no Elastic__Api__BootstrapAdminKey and no Elastic__Api__Jwt__*: only keys already in the cluster's registry can sign in");
            try
            {
                await Task.Delay(Timeout.Infinite, interrupts.Stop);
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C or SIGTERM: stop serving.
            }
            return 0;
        }));
        return command;
    }
}
