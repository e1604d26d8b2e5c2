using Elastic.Cli;
using Elastic.Jobs.Reports;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Tests.Cli;

public sealed class TrainCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-cli-").FullName;

    [Fact]
    public async Task A_bad_spec_is_refused_with_every_error_and_nothing_is_written()
    {
        var spec = Path.Combine(_folder, "bad.json");
        File.WriteAllText(spec, """
            { "name": "bad", "steps": -5, "model": { "dModel": 30, "heads": 4 }, "batch": { "global": 10, "micro": 4 } }
            """);
        var output = new StringWriter();
        var runFolder = Path.Combine(_folder, "run");
        var exit = await Invoke(output, "train", spec, "--out", runFolder, "--report", Path.Combine(_folder, "report.json"));
        Assert.Equal(2, exit);
        var text = output.ToString();
        Assert.Contains("steps = -5", text);
        Assert.Contains("model.dModel = 30", text);
        Assert.Contains("batch.global = 10", text);
        Assert.DoesNotContain("   at ", text);
        Assert.False(Directory.Exists(runFolder));
        Assert.False(File.Exists(Path.Combine(_folder, "report.json")));
    }

    [Fact]
    public async Task Train_writes_a_report_and_a_model_that_sample_can_use()
    {
        var spec = Path.Combine(_folder, "small.json");
        File.WriteAllText(spec, """
            { "name": "small", "steps": 3, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 4, "micro": 2 }, "optimizer": { "warmupSteps": 1 }, "eval": { "every": 2, "batches": 1 } }
            """);
        var run = Path.Combine(_folder, "run");
        var reportPath = Path.Combine(_folder, "report.json");
        Assert.Equal(0, await Invoke(new StringWriter(), "train", spec, "--out", run, "--report", reportPath, "--sample-tokens", "5"));
        var report = RunReport.Read(reportPath);
        Assert.Equal(3, report.Steps.Count);
        Assert.Equal([2L, 3L], report.HeldOut.Select(e => e.Step));
        Assert.Matches("^[0-9a-f]{64}$", report.FinalParameterDigest);
        Assert.True(report.Completed);

        var sampled = new StringWriter();
        Assert.Equal(0, await Invoke(sampled, "sample", "--run", run, "--prompt", "In the", "--tokens", "10"));
        Assert.StartsWith("In the", sampled.ToString());
    }

    [Fact]
    public async Task Train_on_an_in_process_cluster_of_4_or_1_devices_reports_the_engines_digest()
    {
        var spec = Path.Combine(_folder, "dp.json");
        File.WriteAllText(spec, """
            { "name": "dp", "steps": 3, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 8, "micro": 2 }, "optimizer": { "warmupSteps": 1 }, "eval": { "every": 0, "batches": 1 } }
            """);
        var reports = new Dictionary<string, RunReport>();
        foreach (var devices in new[] { "engine", "4", "1", "plan", "zero" })
        {
            var path = Path.Combine(_folder, $"report-{devices}.json");
            var args = devices switch
            {
                "engine" => new[] { "train", spec, "--out", Path.Combine(_folder, "run"), "--report", path, "--sample-tokens", "0" },
                // Tensor parallelism: S = 2 here (2 heads), so tp 2 with 2 replicas.
                "plan" => ["train", spec, "--devices", "4", "--plan", "dp=2,tp=2", "--out", Path.Combine(_folder, "run-plan"), "--report", path, "--prompt", "In the", "--sample-tokens", "8"],
                // ZeRO 3: no replica holds the whole model; they gather it to save it.
                "zero" => ["train", spec, "--devices", "4", "--plan", "dp=4,zero=3", "--out", Path.Combine(_folder, "run-zero"), "--report", path, "--prompt", "In the", "--sample-tokens", "8"],
                _ => ["train", spec, "--devices", devices, "--out", Path.Combine(_folder, $"run-{devices}"), "--report", path, "--prompt", "In the", "--sample-tokens", "8"],
            };
            var output = new StringWriter();
            Assert.True(await Invoke(output, args) == 0, output.ToString());
            reports[devices] = RunReport.Read(path);
            if (devices != "engine")
            {
                // The job wrote its trained model into the run folder, and the CLI sampled from it.
                Assert.True(ModelFolder.Exists(Path.Combine(_folder, $"run-{devices}")));
                Assert.Contains("sample (prompt \"In the\")", output.ToString());
            }
        }
        Assert.Equal(reports["engine"].FinalParameterDigest, reports["4"].FinalParameterDigest);
        Assert.Equal(reports["engine"].FinalParameterDigest, reports["1"].FinalParameterDigest);
        Assert.Equal(reports["engine"].FinalParameterDigest, reports["plan"].FinalParameterDigest);
        Assert.Equal(reports["engine"].FinalParameterDigest, reports["zero"].FinalParameterDigest);
        Assert.Equal(reports["engine"].Steps.Select(s => s.Loss), reports["4"].Steps.Select(s => s.Loss));
    }

    [Fact]
    public async Task Train_refuses_a_device_count_the_spec_cannot_use()
    {
        var spec = Path.Combine(_folder, "wide.json");
        File.WriteAllText(spec, """{ "name": "wide", "devices": { "min": 4 }, "batch": { "global": 16, "micro": 4 } }""");
        var output = new StringWriter();
        Assert.Equal(2, await Invoke(output, "train", spec, "--devices", "2"));
        Assert.Contains("--devices 2: every layout of the spec needs at least 4 device(s)", output.ToString());
    }

    [Theory]
    [InlineData("dp=2,tp=x", "--plan: plan 'dp=2,tp=x': tp: 'x' is not a whole number")]
    [InlineData("dp=4,tp=2", "--plan dp=4,tp=2 needs 8 devices (dp 4 x pp 1 x tp 2), but --devices is 4")]
    [InlineData("dp=1,tp=4", "parallel.start = dp=1,tp=4: tp = 4 does not divide model.tensorShards 2")]
    [InlineData("dp=1,pp=2", "pipeline 2 x virtualStages 1 = 2 chunks need one layer each, but model.layers is 1")]
    [InlineData("dp=4,zero=5", "parallel.start = dp=4,zero=5: zero = 5 is not a ZeRO stage this engine runs (0 to 3)")]
    public async Task Train_refuses_a_plan_it_cannot_run_naming_it_and_writes_nothing(string plan, string message)
    {
        var spec = Path.Combine(_folder, "plan.json");
        File.WriteAllText(spec, """{ "name": "plan", "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 }, "batch": { "global": 8, "micro": 2 } }""");
        var run = Path.Combine(_folder, "run-refused");
        var output = new StringWriter();
        Assert.Equal(2, await Invoke(output, "train", spec, "--devices", "4", "--plan", plan, "--out", run));
        Assert.Contains(message, output.ToString());
        Assert.False(Directory.Exists(run));
    }

    [Fact]
    public async Task Train_refuses_a_device_kind_this_machine_lacks_and_writes_nothing()
    {
        var spec = Path.Combine(_folder, "gpu.json");
        File.WriteAllText(spec, """{ "name": "gpu", "steps": 20 }""");
        var run = Path.Combine(_folder, "run");
        var unknown = new StringWriter();
        Assert.Equal(2, await Invoke(unknown, "train", spec, "--device", "tpu", "--out", run));
        Assert.Contains("--device = tpu: must be auto, cpu or cuda", unknown.ToString());
        if (ComputeDevices.CudaCount == 0)
        {
            var cuda = new StringWriter();
            Assert.Equal(2, await Invoke(cuda, "train", spec, "--device", "cuda", "--devices", "2", "--out", run));
            Assert.Contains("--device = cuda, but no CUDA device is available", cuda.ToString());
            Assert.DoesNotContain("   at ", cuda.ToString());
        }
        Assert.False(Directory.Exists(run));
    }

    [Fact]
    public async Task Cluster_commands_report_an_unreachable_cluster_clearly()
    {
        var output = new StringWriter();
        Assert.Equal(3, await Invoke(output, "list", "--cluster", "localhost:1"));
        Assert.Contains("cannot reach the cluster", output.ToString());
        Assert.DoesNotContain("   at ", output.ToString());
        var bad = new StringWriter();
        Assert.Equal(2, await Invoke(bad, "list", "--cluster", "carrier-pigeon:1"));
        Assert.Contains("--cluster carrier-pigeon:1", bad.ToString());
    }

    [Fact]
    public async Task Sample_without_a_trained_model_names_the_folder()
    {
        var output = new StringWriter();
        Assert.Equal(2, await Invoke(output, "sample", "--run", _folder));
        Assert.Contains(_folder, output.ToString());
        Assert.Contains("no trained model", output.ToString());
    }

    private static Task<int> Invoke(StringWriter output, params string[] args) =>
        ElasticCommandLine.Create().Parse(args).InvokeAsync(new() { Output = output, Error = output });

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
