using System.CommandLine;
using Elastic.Data;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Parallelism;
using Elastic.Silo.Hosting;
using Elastic.Training.Engine;
using Elastic.Training.Sampling;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic train SPEC [--device auto|cpu|cuda] [--devices N] [--resume]</c>: trains on this machine (on a GPU when there is one), directly on the engine (<see cref="EngineTraining"/>)
/// or as a job on an in-process cluster (<see cref="ClusterTraining"/>), and writes the run folder. An interrupt stops at a step
/// boundary and saves a checkpoint that --resume continues from, to the same bits as an uninterrupted run.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var spec = new Argument<FileInfo>("spec") { Description = "Job spec (JSON); see docs/job-spec.md" };
        var devices = new Option<int?>("--devices") { Description = "Run as a job on an in-process cluster of N devices (2 per silo) instead of directly on the engine; on k GPUs, device i runs on GPU i mod k" };
        var deviceKind = new Option<string>("--device") { Description = "auto (a GPU when there is one), cpu or cuda", DefaultValueFactory = _ => "auto" };
        var report = new Option<FileInfo?>("--report") { Description = "Where to write the run report (default: runs/NAME/report.json)" };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Run folder for the spec, trained weights and report (default: runs/NAME)" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt for the text sample printed after training", DefaultValueFactory = _ => "And God said" };
        var sampleTokens = new Option<int>("--sample-tokens") { Description = "Tokens to generate after training (0: none)", DefaultValueFactory = _ => 200 };
        var churn = new Option<bool>("--churn") { Description = "With --devices: a silo leaves a third of the way in and a new one joins two thirds in (elasticity demo)" };
        var resume = new Option<bool>("--resume") { Description = "Continue an interrupted run from the checkpoint it saved in its run folder" };
        var plan = new Option<string?>("--plan") { Description = "With --devices: the layout to start on, e.g. dp=1,pp=2,tp=2,zero=1 (parallel.start); the planner keeps it until devices change, then chooses again among what the spec does not pin. The digest is the same for every layout" };
        var command = new Command("train", "Train a model from a job spec, on this machine's engine or an in-process cluster") { spec, devices, deviceKind, report, output, prompt, sampleTokens, churn, resume, plan };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var specFile = parse.GetValue(spec)!.FullName;
            var deviceCount = parse.GetValue(devices);
            var trainingSpec = Started(SpecFiles.Read(specFile), parse.GetValue(plan), deviceCount);
            var corpus = JobValidation.LoadValidated(trainingSpec);
            var requestedKind = parse.GetValue(deviceKind)!;
            var kind = ResolveDeviceKind(requestedKind);
            // Refused before anything starts or is written: a job too big for the devices it would run on.
            var inProcess = new InProcessDevices(kind, deviceCount ?? 1).For(0, 1);
            var device = deviceCount is null && kind == "cpu"
                ? (MiB: GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 20, Threads: Environment.ProcessorCount, Name: "this machine")
                : (MiB: inProcess.MemoryMiB, Threads: inProcess.ThreadsPerDevice, Name: deviceCount is null ? inProcess.Model : $"a device of the in-process cluster ({inProcess.Model})");
            // The engine alone runs the whole model on one device, whatever pipeline the spec names.
            var onDevice = deviceCount is null ? trainingSpec with { Parallel = trainingSpec.Parallel with { Pipeline = 1 } } : trainingSpec;
            if (JobAdmission.DeviceProblems(onDevice, device.MiB, device.Threads, device.Name).ToList() is { Count: > 0 } tooBig)
                throw new SpecValidationException(tooBig);
            var run = parse.GetValue(output) is { } dir ? new RunFolder(dir.FullName) : RunFolder.ForSpec(trainingSpec);
            var target = new RunTarget(run, parse.GetValue(report)?.FullName ?? run.ReportFile,
                new SampleRequest(parse.GetValue(prompt)!, parse.GetValue(sampleTokens)),
                ResumeHint: $"elastic train {specFile}{(deviceCount is { } n ? $" --devices {n}" : "")}{(parse.GetValue(plan) is { } p ? $" --plan {p}" : "")}{(requestedKind == "auto" ? "" : $" --device {requestedKind}")}{(parse.GetValue(output) is { } o ? $" --out {o.FullName}" : "")} --resume");
            if (target.Sample.Tokens < 0) throw new CliException($"--sample-tokens {target.Sample.Tokens}: must not be negative");
            if (parse.GetValue(churn) && deviceCount is null) throw new CliException("--churn needs --devices N: capacity changes happen on an in-process cluster");
            return deviceCount is { } count
                ? await ClusterTraining.Run(console, trainingSpec, count, kind, parse.GetValue(churn), parse.GetValue(resume), target, cancellation)
                : await EngineTraining.Run(console, trainingSpec, corpus, kind, parse.GetValue(resume), target, cancellation);
        }));
        return command;
    }

    /// <summary>The spec starting on the layout <paramref name="plan"/> names (dp=1,pp=2,tp=2,zero=1,ep=2), which must fit the devices.</summary>
    private static TrainingSpec Started(TrainingSpec spec, string? plan, int? devices)
    {
        if (plan is null) return spec;
        ParallelLayout layout;
        try
        {
            layout = ParallelLayout.Parse(plan);
        }
        catch (ParallelGridException e)
        {
            throw new CliException($"--plan: {e.Message}");
        }
        var grid = layout.Grid;
        if (devices is null) throw new CliException($"--plan {plan} needs --devices: a job starts on a layout on an in-process cluster");
        if (grid.Size > devices) throw new CliException($"--plan {plan} needs {grid.Size} devices (dp {grid.Dp} x pp {grid.Pp} x tp {grid.Tp}), but --devices is {devices}");
        return spec with { Parallel = spec.Parallel with { Start = plan } };
    }

    private static string ResolveDeviceKind(string requested)
    {
        try
        {
            return ComputeDevices.ResolveKind(requested, "--device");
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }

    /// <summary>Writes the report, then prints the loss summary, a text sample from the trained model, and where everything is.</summary>
    public static async Task Finish(CliOutput console, RunReport report, RunFolder? run, RunTarget target)
    {
        report.WriteTo(target.ReportPath);
        LossSummary.Print(console, report);
        if (run is not null && target.Sample.Tokens > 0)
        {
            var text = await DeviceWorker.RunOnce("sampler", report.ThreadsPerDevice, () =>
            {
                var (spec, model) = run.Load();
                using (model) return TextSampler.Sample(model, Tokenizers.Create(spec.Data.Tokenizer), target.Sample.Prompt, target.Sample.Tokens, seed: spec.Seed);
            });
            console.Ansi.WriteLine();
            console.Ansi.Write(new Panel(new Text(text)) { Header = new PanelHeader($"sample (prompt \"{target.Sample.Prompt}\")"), Expand = true });
        }
        console.Plain.WriteLine($"report: {target.ReportPath}");
        if (run is not null) console.Plain.WriteLine($"model:  {run.Path} (elastic sample --run {run.Path})");
        console.Plain.WriteLine($"finalParameterDigest: {report.FinalParameterDigest}");
    }

    /// <summary>What an interrupted run prints: where its checkpoint is and the command that continues it.</summary>
    public static int Interrupted(CliOutput console, long step, int steps, string where, RunTarget target)
    {
        console.Plain.WriteLine($"interrupted after step {step} of {steps}; checkpoint saved in {where}");
        console.Plain.WriteLine($"resume with: {target.ResumeHint}");
        return CommandRunner.Cancelled;
    }

    public static void Describe(CliOutput console, TrainingSpec spec, string where) =>
        console.Ansi.MarkupLineInterpolated($"[bold]{spec.Name}[/]: {spec.Model.Layers} layers, d={spec.Model.DModel}, {spec.Model.Heads} heads, context {spec.Model.Context}; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {spec.Steps} steps on {where} ({spec.Runtime.ThreadsPerDevice} thread(s) per device)");
}

internal sealed record SampleRequest(string Prompt, int Tokens);

/// <summary>Where a `train` run leaves its results, and how to continue it if it is interrupted.</summary>
internal sealed record RunTarget(RunFolder Run, string ReportPath, SampleRequest Sample, string ResumeHint);
