using System.Net;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Service;
using Elastic.Service.Access;
using Elastic.Silo.Hosting;
using Elastic.Tests.Cluster;

namespace Elastic.Tests.Deployment;

/// <summary>
/// The silo and the API as their images run them (infra/images): folders made by infra/images/publish.sh, a .NET
/// runtime without the SDK, an environment that holds nothing but their settings, a working folder outside the repository.
/// </summary>
public sealed class PublishedServiceTests
{
    [Fact]
    public async Task The_published_silo_and_api_train_a_job_to_the_engines_digest_and_the_silo_drains_on_its_prestop_hook()
    {
        var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var folder = Directory.CreateTempSubdirectory("elastic-published-").FullName;
        try
        {
            var publish = Path.Combine(folder, "publish");
            await Publish(publish);
            var dotnet = RuntimeOnly(Path.Combine(folder, "runtime"));
            var work = Directory.CreateDirectory(Path.Combine(folder, "work")).FullName;
            await using var azurite = await AzuriteProcess.StartAsync();
            var ports = ProcessCluster.FreePorts(4);
            var bare = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin", ["HOME"] = work, ["DOTNET_ROOT"] = Path.GetDirectoryName(dotnet)! };

            using var silo = OutputProcess.Start(dotnet, [Path.Combine(publish, "silo", "Elastic.Silo.dll")], new Dictionary<string, string>(bare)
            {
                ["Elastic__Name"] = "published-silo",
                ["Elastic__Clustering"] = "azure",
                ["Elastic__ConnectionString"] = azurite.ConnectionString,
                ["Elastic__Checkpoints__ConnectionString"] = azurite.ConnectionString,
                ["Elastic__SiloPort"] = $"{ports[0]}",
                ["Elastic__GatewayPort"] = $"{ports[1]}",
                ["Elastic__Probes__Port"] = $"{ports[2]}",
                ["Elastic__Devices__Kind"] = "cpu",
                ["Elastic__Devices__Count"] = "2",
                ["Elastic__Calibrate"] = "false",
            }, inherit: false, workingDirectory: work);
            using var probes = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[2]}"), Timeout = TimeSpan.FromSeconds(30) };
            await Until(async () => (await Get(probes, ServiceDefaults.ReadyPath)).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(90), silo);
            Assert.Equal((HttpStatusCode.OK, "Healthy"), await Get(probes, ServiceDefaults.LivePath));

            var adminKey = ApiKeySecret.New().Text;
            using var api = OutputProcess.Start(dotnet, [Path.Combine(publish, "cli", "elastic.dll"), "serve", "--urls", $"http://127.0.0.1:{ports[3]}"],
                new Dictionary<string, string>(bare) { ["ELASTIC_CLUSTER"] = "azure:" + azurite.ConnectionString, ["Elastic__Api__BootstrapAdminKey"] = adminKey },
                inherit: false, workingDirectory: work);
            await api.Line(l => l.StartsWith("API ", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
            using var client = ElasticApiClient.Create(new Uri($"http://127.0.0.1:{ports[3]}"), adminKey);
            var jobId = await client.SubmitAsync(spec);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            JobStatus? last = null;
            await foreach (var progress in client.WatchAsync(jobId, timeout.Token)) last = progress.Status;
            Assert.True(last?.State == JobState.Completed, $"{last?.State}: {last?.Error}");
            Assert.Equal(reference, last!.FinalParameterDigest);

            // Prometheus scrapes the silo on the probe port: Orleans' meters and Elastic's.
            var metrics = await Get(probes, ServiceDefaults.MetricsPath);
            Assert.Equal(HttpStatusCode.OK, metrics.Status);
            Assert.Contains("orleans_", metrics.Body);

            // The pod's preStop hook: the drain answers when it is over, and the silo is no longer ready.
            Assert.Equal((HttpStatusCode.OK, "drained\n"), await Get(probes, SiloProbes.DrainPath));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(probes, ServiceDefaults.ReadyPath)).Status);
            Assert.Equal(0, await api.Terminate());
            Assert.Equal(0, await silo.Terminate());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task Publish(string folder)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        using var script = OutputProcess.Start("bash", [Path.Combine(RepoPaths.Root, "infra", "images", "publish.sh"), folder, "--no-build", "-c", configuration],
            new Dictionary<string, string>());
        Assert.True(await script.Exit(TimeSpan.FromMinutes(5)) == 0, script.Output);
    }

    /// <summary>A .NET root with the host and the shared runtimes but no SDK, as in the images' base; returns its dotnet.</summary>
    private static string RuntimeOnly(string folder)
    {
        var muxer = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "dotnet")).First(File.Exists);
        var installed = Path.GetDirectoryName(new FileInfo(muxer).ResolveLinkTarget(true)?.FullName ?? muxer)!;
        Directory.CreateDirectory(folder);
        // The muxer is copied (it finds the host next to its own real path); the host and the runtimes are linked.
        File.Copy(Path.Combine(installed, "dotnet"), Path.Combine(folder, "dotnet"));
        foreach (var part in new[] { "host", "shared" }) Directory.CreateSymbolicLink(Path.Combine(folder, part), Path.Combine(installed, part));
        return Path.Combine(folder, "dotnet");
    }

    private static async Task<(HttpStatusCode Status, string Body)> Get(HttpClient http, string path)
    {
        try
        {
            using var response = await http.GetAsync(path);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException e)
        {
            return (0, e.Message);
        }
    }

    private static async Task Until(Func<Task<bool>> condition, TimeSpan limit, OutputProcess process)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!await condition())
        {
            Assert.False(process.HasExited, "the silo exited: " + process.Output);
            Assert.True(DateTime.UtcNow < deadline, $"not ready after {limit.TotalSeconds} s: " + process.Output);
            await Task.Delay(250);
        }
    }
}
