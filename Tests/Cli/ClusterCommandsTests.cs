using Elastic.Cli;
using Elastic.Silo.Hosting;

namespace Elastic.Tests.Cli;

/// <summary>The cluster commands against a real embedded cluster, through the command line as a user types them.</summary>
public sealed class ClusterCommandsTests : IAsyncLifetime
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-cli-cluster-").FullName;
    private EmbeddedCluster _cluster = null!;
    private string _address = "";

    public async Task InitializeAsync()
    {
        _cluster = await EmbeddedCluster.StartAsync([2], Path.Combine(_folder, "checkpoints"));
        _address = $"static:{_cluster.Gateway}";
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }

    private async Task<(int Exit, string Output)> Elastic(params string[] args)
    {
        var output = new StringWriter();
        var exit = await ElasticCommandLine.Create().Parse([.. args, "--cluster", _address]).InvokeAsync(new() { Output = output, Error = output });
        return (exit, output.ToString());
    }

    [Fact]
    public async Task Submit_watch_status_events_list_and_cluster_describe_a_job()
    {
        var spec = Path.Combine(_folder, "job.json");
        File.WriteAllText(spec, """
            { "name": "cli-job", "steps": 4, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 8, "micro": 2 }, "optimizer": { "warmupSteps": 1 }, "eval": { "every": 0, "batches": 1 } }
            """);
        var cluster = await Elastic("cluster");
        Assert.Equal(0, cluster.Exit);
        Assert.Contains("1 silo(s), 2 device(s)", cluster.Output);

        var submitted = await Elastic("submit", spec, "--key", "cli-1");
        Assert.Equal(0, submitted.Exit);
        var jobId = submitted.Output.Trim();
        Assert.StartsWith("cli-job-", jobId);
        Assert.Equal(jobId, (await Elastic("submit", spec, "--key", "cli-1")).Output.Trim());

        var watched = await Elastic("watch", jobId);
        Assert.True(watched.Exit == 0, watched.Output);
        Assert.Contains("step 4/4", watched.Output);
        Assert.Contains($"{jobId}: Completed after 4 steps", watched.Output);

        var status = await Elastic("status", jobId);
        Assert.Contains("Completed", status.Output);
        Assert.Contains("dp=2", status.Output);
        var events = await Elastic("events", jobId);
        Assert.Contains("submitted:", events.Output);
        Assert.Contains("completed:", events.Output);
        Assert.Contains(jobId, (await Elastic("list")).Output);
        foreach (var request in new[] { "cancel", "checkpoint" })
        {
            var refused = await Elastic(request, jobId);
            Assert.Equal(2, refused.Exit);
            Assert.Contains($"job {jobId} already completed: nothing to {request}", refused.Output);
        }
        var noCheckpoint = await Elastic("export", jobId, "--out", Path.Combine(_folder, "export"));
        Assert.Equal(2, noCheckpoint.Exit);
        Assert.Contains("has no checkpoint", noCheckpoint.Output);
    }

    [Fact]
    public async Task Checkpoint_and_export_commands_write_a_model_from_a_running_job()
    {
        var spec = Path.Combine(_folder, "long.json");
        File.WriteAllText(spec, """
            { "name": "long", "steps": 100000, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 8, "micro": 2 }, "optimizer": { "warmupSteps": 1 } }
            """);
        var jobId = (await Elastic("submit", spec)).Output.Trim();
        Assert.Equal(0, (await Elastic("checkpoint", jobId)).Exit);
        string exported;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            var export = await Elastic("export", jobId, "--out", Path.Combine(_folder, "export"));
            if (export.Exit == 0)
            {
                exported = export.Output.Trim();
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, export.Output);
            await Task.Delay(100);
        }
        await Elastic("cancel", jobId);
        Assert.Equal(Path.Combine(_folder, "export", "model.safetensors"), exported);
        Assert.True(File.Exists(Path.Combine(_folder, "export", "config.json")));
    }
    [Fact]
    public async Task Replan_moves_a_running_job_to_another_layout_and_refuses_one_that_cannot_run()
    {
        var spec = Path.Combine(_folder, "replan.json");
        File.WriteAllText(spec, """
            { "name": "replan", "steps": 100000, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 8, "micro": 2 }, "optimizer": { "warmupSteps": 1 } }
            """);
        var jobId = (await Elastic("submit", spec)).Output.Trim();

        var refused = await Elastic("replan", jobId, "--plan", "dp=1,tp=4");
        Assert.Equal(2, refused.Exit);
        Assert.Contains("tp = 4 does not divide model.tensorShards 2", refused.Output);
        Assert.Contains("the largest silo has 2", refused.Output);
        Assert.DoesNotContain("   at ", refused.Output);
        Assert.Contains("no job 'no-such-job'", (await Elastic("replan", "no-such-job", "--plan", "dp=1,tp=2")).Output);

        var moved = await Elastic("replan", jobId, "--plan", "dp=1,tp=2");
        Assert.True(moved.Exit == 0, moved.Output);
        Assert.Contains("moves to dp=1,tp=2 at the next step boundary", moved.Output);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        string events;
        while (!(events = (await Elastic("events", jobId)).Output).Contains("requested: dp=1,pp=1,tp=2 asked for; dp=2,pp=1,tp=1 -> dp=1,pp=1,tp=2"))
        {
            Assert.True(DateTime.UtcNow < deadline, events);
            await Task.Delay(100);
        }
        await Elastic("cancel", jobId);
    }

    [Fact]
    public async Task Bad_input_to_cluster_commands_gets_a_clear_error()
    {
        var unknown = await Elastic("status", "no-such-job");
        Assert.Equal(2, unknown.Exit);
        Assert.Contains("no job 'no-such-job'", unknown.Output);

        var spec = Path.Combine(_folder, "bad.json");
        File.WriteAllText(spec, """{ "steps": 0, "batch": { "global": 6, "micro": 4 } }""");
        var rejected = await Elastic("submit", spec);
        Assert.Equal(2, rejected.Exit);
        Assert.Contains("steps = 0", rejected.Output);
        Assert.Contains("batch.global = 6", rejected.Output);
        Assert.DoesNotContain("   at ", rejected.Output);
    }
}
