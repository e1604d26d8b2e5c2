using System.Diagnostics;
using Elastic.Cli;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Tests.Cli;

/// <summary>
/// SIGTERM to a real `elastic train` process (handled like Ctrl-C's SIGINT, which a test run started in the background of a
/// shell without job control inherits as ignored): it stops at a step boundary, saves a checkpoint and the partial report,
/// says how to resume and exits 130; `--resume` then ends with the digest of a run that was never interrupted. A second
/// signal aborts at once.
/// </summary>
public sealed class InterruptTests : IDisposable
{
    private static readonly string Cli = Path.Combine(RepoPaths.Root, "Client", "Cli", "bin", "Release", "net10.0", "elastic.dll");
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-interrupt-").FullName;

    [Theory]
    [InlineData(null, 3000)]
    [InlineData(2, 600)]
    public async Task An_interrupted_train_saves_a_checkpoint_and_resume_ends_with_the_uninterrupted_digest(int? devices, int steps)
    {
        var specFile = Path.Combine(_folder, "spec.json");
        File.WriteAllText(specFile, $$"""
            { "name": "interrupted", "steps": {{steps}}, "model": { "layers": 1, "dModel": 32, "heads": 2, "context": 16 },
              "batch": { "global": 4, "micro": 2 }, "optimizer": { "warmupSteps": 1 }, "eval": { "every": 0, "batches": 1 } }
            """);
        var run = Path.Combine(_folder, "run");
        string[] where = devices is { } n ? ["--devices", $"{n}"] : [];
        string[] args = ["train", specFile, .. where, "--out", run, "--sample-tokens", "0"];

        var (exit, output) = await RunUntilStepThenInterrupt(args);
        Assert.True(exit == 130, $"exit {exit}: {output}");
        Assert.Contains("stopping at the next step boundary", output);
        Assert.Matches(@"interrupted after step [1-9]\d* of " + steps, output);
        Assert.Contains($"resume with: elastic train {specFile}{(devices is null ? "" : $" --devices {devices}")} --out {run} --resume", output);
        var partial = RunReport.Read(Path.Combine(run, "report.json"));
        Assert.False(partial.Completed);

        var resumed = new StringWriter();
        var code = await ElasticCommandLine.Create().Parse([.. args, "--resume"]).InvokeAsync(new() { Output = resumed, Error = resumed });
        Assert.True(code == 0, resumed.ToString());
        var report = RunReport.Read(Path.Combine(run, "report.json"));
        Assert.True(report.Completed);
        Assert.Equal(await TestSpecs.ReferenceDigest(SpecJson.Read(specFile)), report.FinalParameterDigest);
    }

    [Fact]
    public async Task A_second_interrupt_aborts_at_once_with_exit_code_130()
    {
        var specFile = Path.Combine(_folder, "spec.json");
        File.WriteAllText(specFile, """
            { "name": "aborted", "steps": 100, "model": { "layers": 2, "dModel": 384, "heads": 4, "context": 256 },
              "batch": { "global": 8, "micro": 4 }, "eval": { "every": 0, "batches": 1 } }
            """);
        // The first signal stops the job at the next step boundary: steps of more than half a second (on an idle machine; longer
        // under load) keep it running when the second lands 200 ms later, where a tiny model's millisecond steps let it finish
        // first. The CLI reports every 1/20 of the steps, 5 here: within seconds.
        var (exit, output) = await RunUntilStepThenInterrupt(["train", specFile, "--devices", "2", "--out", Path.Combine(_folder, "run"), "--sample-tokens", "0"], signals: 2);

        Assert.True(exit == 130, $"exit {exit}: {output}");
        Assert.Contains("interrupt again to abort at once", output);
        Assert.Contains("interrupted again: aborting now", output);
    }

    /// <summary>Starts the CLI as its own process, sends SIGTERM (<paramref name="signals"/> times, 200 ms apart) once it has reported a step, and waits for it to end.</summary>
    private static async Task<(int Exit, string Output)> RunUntilStepThenInterrupt(string[] args, int signals = 1)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Cli);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var output = new System.Text.StringBuilder();
        var stepped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (e.Data.StartsWith("step ", StringComparison.Ordinal)) stepped.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await stepped.Task.WaitAsync(TimeSpan.FromMinutes(2));
            for (var i = 0; i < signals; i++)
            {
                if (i > 0) await Task.Delay(200);
                Assert.True(Signal(process.Id, SigTerm) == 0, $"kill({process.Id}, SIGTERM) failed");
            }
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        lock (output) return (process.ExitCode, output.ToString());
    }

    private const int SigTerm = 15;

    // libc's kill(2): no procps needed (a fresh Debian machine has no kill command).
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
