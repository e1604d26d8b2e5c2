using System.Diagnostics;
using System.Text;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
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
            await foreach (var progress in user.WatchAsync(jobId)) last = progress.Status;
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

    private static CliProcess Start(string[] args, params (string Name, string Value)[] environment)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Cli);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return new CliProcess(Process.Start(info)!);
    }

    /// <summary>A CLI process whose output is collected line by line.</summary>
    private sealed class CliProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiting = [];

        public CliProcess(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Received(e.Data);
            process.ErrorDataReceived += (_, e) => Received(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public string Output
        {
            get
            {
                lock (_output) return _output.ToString();
            }
        }

        public Task<string> Line(Func<string, bool> match)
        {
            var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_output)
            {
                if (_output.ToString().Split('\n').FirstOrDefault(l => match(l.TrimEnd('\r'))) is { } seen) return Task.FromResult(seen.TrimEnd('\r'));
                _waiting.Add((match, found));
            }
            return found.Task.WaitAsync(TimeSpan.FromMinutes(1));
        }

        public async Task<int> Terminate()
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
            return await Exit();
        }

        public async Task<int> Exit()
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
            return _process.ExitCode;
        }

        public void Kill()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }

        public void Dispose() => _process.Dispose();

        private void Received(string? line)
        {
            if (line is null) return;
            lock (_output)
            {
                _output.AppendLine(line);
                foreach (var waiter in _waiting.Where(w => w.Match(line)).ToList())
                {
                    waiter.Found.TrySetResult(line);
                    _waiting.Remove(waiter);
                }
            }
        }
    }
}
