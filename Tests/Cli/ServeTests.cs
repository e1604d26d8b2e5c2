using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Service;
using Elastic.Service.Access;
using Elastic.Silo.Hosting;

namespace Elastic.Tests.Cli;

/// <summary>
/// `elastic serve`: the API as a process of its own, an Orleans client of a cluster in another process; its settings from
/// Elastic__Api__* variables, refused (without echoing a secret) when bad, and a clean stop on SIGTERM.
/// </summary>
public sealed class ServeTests
{
    private static readonly string Cli = Path.Combine(RepoPaths.Root, "Client", "Cli", "bin", "Release", "net10.0", "elastic.dll");

    [Fact]
    public async Task Serve_fronts_a_cluster_as_its_own_process_and_stops_on_sigterm()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-serve-").FullName;
        await using var cluster = await EmbeddedCluster.StartAsync([1], Path.Combine(folder, "checkpoints"));
        var adminKey = ApiKeySecret.New().Text;
        using var serve = Start(["serve", "--cluster", $"static:{cluster.Gateway}", "--urls", "http://127.0.0.1:0"], ("Elastic__Api__BootstrapAdminKey", adminKey));
        try
        {
            var line = await serve.Line(l => l.StartsWith("API ", StringComparison.Ordinal));
            var address = new Uri(line.Split(' ')[1]);
            Assert.Contains($"in front of static:{cluster.Gateway}", line);
            Assert.DoesNotContain(adminKey, serve.Output);

            using var admin = ElasticApiClient.Create(address, adminKey);
            using var user = ElasticApiClient.Create(address, (await admin.CreateKeyAsync(new CreateKeyRequest("team-serve", ApiRole.User, null, null))).Key);
            var jobId = await user.SubmitAsync(TestSpecs.Tiny(steps: 3));
            JobStatus? last = null;
            await foreach (var progress in user.WatchAsync(jobId, Bounded.Within())) last = progress.Status;
            Assert.Equal(JobState.Completed, last!.State);
            Assert.Equal("team-serve", last.Tenant);
            Assert.Equal(await TestSpecs.ReferenceDigest(TestSpecs.Tiny(steps: 3)), last.FinalParameterDigest);
            using var anonymous = new HttpClient { BaseAddress = address };
            Assert.Equal("Healthy", await anonymous.GetStringAsync("/health/ready"));

            Assert.Equal(0, await serve.Terminate());
            Assert.Contains("SIGTERM: stopping the API", serve.Output);
        }
        finally
        {
            serve.Kill();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Readiness_fails_when_the_cluster_behind_the_api_is_gone_and_liveness_does_not()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-serve-ready-").FullName;
        var cluster = await EmbeddedCluster.StartAsync([1], Path.Combine(folder, "checkpoints"));
        using var serve = Start(["serve", "--cluster", $"static:{cluster.Gateway}", "--urls", "http://127.0.0.1:0"]);
        try
        {
            var address = new Uri((await serve.Line(l => l.StartsWith("API ", StringComparison.Ordinal))).Split(' ')[1]);
            using var anonymous = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
            Assert.Equal("Healthy", await anonymous.GetStringAsync(ServiceDefaults.ReadyPath));

            await cluster.DisposeAsync();
            var ready = await Bounded.Until(async c => (await anonymous.GetAsync(ServiceDefaults.ReadyPath, c)).StatusCode, s => s == System.Net.HttpStatusCode.ServiceUnavailable,
                "readiness failing once the cluster is gone", TimeSpan.FromSeconds(60));
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready);
            Assert.Equal("Healthy", await anonymous.GetStringAsync(ServiceDefaults.LivePath));
        }
        finally
        {
            await cluster.DisposeAsync();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Bad_api_settings_are_refused_naming_the_setting_without_echoing_the_secret()
    {
        using var serve = Start(["serve", "--cluster", "static:127.0.0.1:1"],
            ("Elastic__Api__BootstrapAdminKey", "secret-that-is-not-a-key"), ("Elastic__Api__RateLimit__Burst", "-3"));
        var exit = await serve.Exit();
        Assert.Equal(2, exit);
        Assert.Contains("Elastic:Api:BootstrapAdminKey: not an API key", serve.Output);
        Assert.Contains("Elastic:Api:RateLimit:Burst = -3: must be a positive integer", serve.Output);
        Assert.DoesNotContain("secret-that-is-not-a-key", serve.Output);
    }

    private static OutputProcess Start(string[] args, params (string Name, string Value)[] environment) =>
        OutputProcess.Start("dotnet", [Cli, .. args], environment.ToDictionary(e => e.Name, e => e.Value));
}
