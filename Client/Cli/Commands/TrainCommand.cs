using System.CommandLine;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Grains.Jobs;
using Elastic.Silo.Hosting;
using Elastic.Training.Data;
using Elastic.Training.Engine;
using Elastic.Training.Sampling;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic train SPEC [--devices N]</c>: trains on this machine, directly on the engine or as a job on an in-process cluster, and writes the run report.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var spec = new Argument<FileInfo>("spec") { Description = "Job spec (JSON); see docs/job-spec.md" };
        var devices = new Option<int?>("--devices") { Description = "Run as a job on an in-process cluster of N virtual devices (2 per silo) instead of directly on the engine" };
        var report = new Option<FileInfo?>("--report") { Description = "Where to write the run report (default: runs/NAME/report.json)" };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Run folder for the spec, trained weights and report (default: runs/NAME)" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt for the text sample printed after training", DefaultValueFactory = _ => "And God said" };
        var sampleTokens = new Option<int>("--sample-tokens") { Description = "Tokens to generate after training (0: none)", DefaultValueFactory = _ => 200 };
        var churn = new Option<bool>("--churn") { Description = "With --devices: a silo leaves a third of the way in and a new one joins two thirds in (elasticity demo)" };
        var command = new Command("train", "Train a model from a job spec, on this machine's engine or an in-process cluster") { spec, devices, report, output, prompt, sampleTokens, churn };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var trainingSpec = SpecJson.Read(parse.GetValue(spec)!.FullName);
            JobValidation.ThrowIfInvalid(trainingSpec);
            // Refused before anything starts or is written: a job too big for the devices it would run on.
            var device = parse.GetValue(devices) is null
                ? (MiB: GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 20, Threads: Environment.ProcessorCount, Name: "this machine")
                : (MiB: EmbeddedCluster.Devices(1).MemoryMiB, Threads: EmbeddedCluster.Devices(1).ThreadsPerDevice, Name: "a device of the in-process cluster");
            if (JobAdmission.DeviceProblems(trainingSpec, device.MiB, device.Threads, device.Name).ToList() is { Count: > 0 } tooBig)
                throw new SpecValidationException(tooBig);
            var run = parse.GetValue(output) is { } dir ? new RunFolder(dir.FullName) : RunFolder.ForSpec(trainingSpec);
            var reportPath = parse.GetValue(report)?.FullName ?? run.ReportFile;
            var sample = new SampleRequest(parse.GetValue(prompt)!, parse.GetValue(sampleTokens));
            if (sample.Tokens < 0) throw new CliException($"--sample-tokens {sample.Tokens}: must not be negative");
            if (parse.GetValue(churn) && parse.GetValue(devices) is null) throw new CliException("--churn needs --devices N: capacity changes happen on an in-process cluster");
            return parse.GetValue(devices) is { } n
                ? await OnCluster(console, trainingSpec, n, parse.GetValue(churn), run, reportPath, sample, cancellation)
                : await OnEngine(console, trainingSpec, run, reportPath, sample, cancellation);
        }));
        return command;
    }

    private sealed record SampleRequest(string Prompt, int Tokens);

    private static async Task<int> OnEngine(CliOutput console, TrainingSpec spec, RunFolder run, string reportPath, SampleRequest sample, CancellationToken cancellation)
    {
        var corpus = TokenCorpus.Load(spec);
        Describe(console, spec, "1 device");
        var report = await TrainingProgress.Show(console, spec.Steps, sink => DeviceWorker.RunOnce("device-0", spec.Runtime.ThreadsPerDevice, () =>
        {
            using var trainer = new Trainer(spec, corpus);
            var result = TrainingLoop.Run(trainer, sink.Step, cancellation);
            run.Save(spec, trainer.Model);
            return result;
        }));
        await Finish(console, report, run, reportPath, sample);
        return report.Completed ? 0 : CommandRunner.Cancelled;
    }

    /// <summary>Starts an in-process cluster, submits the spec (its model to be written into the run folder) and follows it to the end.</summary>
    private static async Task<int> OnCluster(CliOutput console, TrainingSpec spec, int devices, bool churn, RunFolder run, string reportPath, SampleRequest sample, CancellationToken cancellation)
    {
        var widths = SpecValidator.DataParallelWidths(spec);
        if (devices < 1 || !widths.Any(w => w <= devices))
            throw new CliException($"--devices {devices}: the spec runs on {string.Join(" or ", widths)} device(s) (devices.min {spec.Devices.Min}, devices.max {spec.Devices.Max}, {spec.Batch.MicroBatchesPerStep} micro-batches per step)");
        var layout = EmbeddedCluster.Layout(devices);
        Describe(console, spec, $"an in-process cluster of {layout.Count} silo(s) x {layout[0]} device(s)");
        var model = spec.Output.Directory is { } chosen ? new RunFolder(chosen) : run;
        // The job may read the spec's data file and write its model into the run folder, nothing else.
        var admission = new AdmissionOptions
        {
            DataRoots = new PathRoots(spec.Data.Source.StartsWith(DataSpec.BundledPrefix, StringComparison.Ordinal) ? [] : [spec.Data.Source]),
            OutputRoots = new PathRoots([model.Path]),
        };
        await using var cluster = await EmbeddedCluster.StartAsync(layout, Path.Combine(run.Path, "checkpoints"), cancellation, admission);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]), cancellation: cancellation);
        var client = connection.Client;
        await client.WaitForDevicesAsync(devices, TimeSpan.FromSeconds(30), cancellation);
        var jobId = await client.SubmitAsync(spec with { Output = new OutputSpec { Directory = model.Path } }, cancellation: cancellation);
        console.Plain.WriteLine($"job {jobId}");
        JobStatus final;
        try
        {
            final = await TrainingProgress.Show(console, spec.Steps, async sink =>
            {
                var changes = churn ? ClusterChurn.Run(cluster, connection, jobId, spec.Steps, layout[0], sink.Note, cancellation) : Task.CompletedTask;
                var ended = await JobWatcher.Follow(client, jobId, sink, cancellation);
                await changes;
                return ended;
            });
        }
        catch (OperationCanceledException)
        {
            await client.CancelAsync(jobId, CancellationToken.None);
            throw;
        }
        var report = await client.GetReportAsync(jobId, cancellation);
        console.Plain.WriteLine($"{jobId}: {final.State}, {final.Plan}");
        if (final.Error is not null) console.Plain.WriteLine($"error: {final.Error}");
        await Finish(console, report, final.State == JobState.Completed ? model : null, reportPath, sample);
        return final.State == JobState.Completed ? 0 : 1;
    }

    /// <summary>Writes the report, then prints the loss summary, a text sample from the trained model, and where everything is.</summary>
    private static async Task Finish(CliOutput console, RunReport report, RunFolder? run, string reportPath, SampleRequest sample)
    {
        report.WriteTo(reportPath);
        LossSummary.Print(console, report);
        if (run is not null && sample.Tokens > 0)
        {
            var text = await DeviceWorker.RunOnce("sampler", report.ThreadsPerDevice, () =>
            {
                var (spec, model) = run.Load();
                using (model) return TextSampler.Sample(model, Tokenizers.Create(spec.Data.Tokenizer), sample.Prompt, sample.Tokens, seed: spec.Seed);
            });
            console.Ansi.WriteLine();
            console.Ansi.Write(new Panel(new Text(text)) { Header = new PanelHeader($"sample (prompt \"{sample.Prompt}\")"), Expand = true });
        }
        console.Plain.WriteLine($"report: {reportPath}");
        if (run is not null) console.Plain.WriteLine($"model:  {run.Path} (elastic sample --run {run.Path})");
        console.Plain.WriteLine($"finalParameterDigest: {report.FinalParameterDigest}");
    }

    private static void Describe(CliOutput console, TrainingSpec spec, string where) =>
        console.Ansi.MarkupLineInterpolated($"[bold]{spec.Name}[/]: {spec.Model.Layers} layers, d={spec.Model.DModel}, {spec.Model.Heads} heads, context {spec.Model.Context}; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {spec.Steps} steps on {where} ({spec.Runtime.ThreadsPerDevice} thread(s) per device)");
}
