using Elastic.Cli;

namespace Elastic.Tests.Service;

/// <summary>The CLI through the HTTP API (--api, the key in ELASTIC_API_KEY), as an admin and a tenant's user type it.</summary>
public sealed class CliOverApiTests(ApiFixture api) : IClassFixture<ApiFixture>, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-cli-api-").FullName;

    /// <summary>Runs `elastic ARGS --api URL` with <paramref name="key"/> in ELASTIC_API_KEY (only these tests set it).</summary>
    private async Task<(int Exit, string Output)> Elastic(string key, params string[] args)
    {
        var output = new StringWriter();
        Environment.SetEnvironmentVariable("ELASTIC_API_KEY", key);
        try
        {
            var exit = await ElasticCommandLine.Create().Parse([.. args, "--api", api.Api.Address.ToString()]).InvokeAsync(new() { Output = output, Error = output });
            return (exit, output.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable("ELASTIC_API_KEY", null);
        }
    }

    [Fact]
    public async Task An_admin_creates_a_key_its_tenant_submits_and_watches_a_job_and_a_revoked_key_is_refused()
    {
        var created = await Elastic(ApiFixture.AdminKey, "keys", "create", "--tenant", "team-cli", "--name", "ci");
        Assert.True(created.Exit == 0, created.Output);
        var key = created.Output.Split('\n')[0].Trim();
        var id = key[3..15];

        var listed = await Elastic(ApiFixture.AdminKey, "keys", "list");
        Assert.Contains(id, listed.Output);
        Assert.DoesNotContain(key[16..], listed.Output);
        Assert.Contains("admin", (await Elastic(key, "keys", "list")).Output);

        var spec = Path.Combine(_folder, "job.json");
        File.WriteAllText(spec, """
            { "name": "api-job", "steps": 3, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 8, "micro": 2 }, "optimizer": { "warmupSteps": 1 }, "eval": { "every": 0, "batches": 1 } }
            """);
        var submitted = await Elastic(key, "submit", spec, "--key", "cli-api-1");
        Assert.True(submitted.Exit == 0, submitted.Output);
        var jobId = submitted.Output.Trim();
        var watched = await Elastic(key, "watch", jobId);
        Assert.True(watched.Exit == 0, watched.Output);
        Assert.Contains($"{jobId}: Completed after 3 steps", watched.Output);
        Assert.Contains("Completed", (await Elastic(key, "status", jobId)).Output);
        Assert.Contains(jobId, (await Elastic(key, "list")).Output);

        Assert.Equal(0, (await Elastic(ApiFixture.AdminKey, "keys", "revoke", id)).Exit);
        var refused = await Elastic(key, "status", jobId);
        Assert.Equal(2, refused.Exit);
        Assert.Contains("revoked", refused.Output);
        Assert.DoesNotContain(key[16..], refused.Output);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
