using System.CommandLine;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
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
        var prompt = new Option<string>("--prompt") { Description = "Prompt for the text sample printed after a local run", DefaultValueFactory = _ => "And God said" };
        var sampleTokens = new Option<int>("--sample-tokens") { Description = "Tokens to generate after a local run (0: none)", DefaultValueFactory = _ => 200 };
        var command = new Command("train", "Train a model from a job spec, on this machine's engine or an in-process cluster") { spec, devices, report, output, prompt, sampleTokens };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var trainingSpec = SpecJson.Read(parse.GetValue(spec)!.FullName);
            JobValidation.ThrowIfInvalid(trainingSpec);
            var run = parse.GetValue(output) is { } dir ? new RunFolder(dir.FullName) : RunFolder.ForSpec(trainingSpec);
            var reportPath = parse.GetValue(report)?.FullName ?? run.ReportFile;
            return parse.GetValue(devices) is { } n
                ? await OnCluster(console, trainingSpec, n, reportPath, cancellation)
                : await OnEngine(console, trainingSpec, run, reportPath, parse.GetValue(prompt)!, parse.GetValue(sampleTokens), cancellation);
        }));
        return command;
    }

    private static async Task<int> OnEngine(CliOutput console, TrainingSpec spec, RunFolder run, string reportPath, string prompt, int sampleTokens, CancellationToken cancellation)
    {
        if (sampleTokens < 0) throw new CliException($"--sample-tokens {sampleTokens}: must not be negative");
        var corpus = TokenCorpus.Load(spec);
        Describe(console, spec, "1 device");
        var (report, sample) = await TrainingProgress.Show(console, spec.Steps, sink => DeviceWorker.RunOnce("device-0", spec.Runtime.ThreadsPerDevice, () =>
        {
            using var trainer = new Trainer(spec, corpus);
            var result = TrainingLoop.Run(trainer, sink.Step, cancellation);
            run.Save(spec, trainer.Model);
            var text = sampleTokens > 0 ? TextSampler.Sample(trainer.Model, trainer.Tokenizer, prompt, sampleTokens, seed: spec.Seed) : null;
            return (result, text);
        }));
        report.WriteTo(reportPath);
        LossSummary.Print(console, report);
        if (sample is not null)
        {
            console.Ansi.WriteLine();
            console.Ansi.Write(new Panel(new Text(sample)) { Header = new PanelHeader($"sample (prompt \"{prompt}\")") });
        }
        console.Plain.WriteLine($"report: {reportPath}");
        console.Plain.WriteLine($"model:  {run.Path} (elastic sample --run {run.Path})");
        console.Plain.WriteLine($"finalParameterDigest: {report.FinalParameterDigest}");
        return report.Completed ? 0 : CommandRunner.Cancelled;
    }

    private static async Task<int> OnCluster(CliOutput console, TrainingSpec spec, int devices, string reportPath, CancellationToken cancellation)
    {
        var widths = SpecValidator.DataParallelWidths(spec);
        if (devices < 1 || !widths.Any(w => w <= devices))
            throw new CliException($"--devices {devices}: the spec runs on {string.Join(" or ", widths)} device(s) (devices.min {spec.Devices.Min}, devices.max {spec.Devices.Max}, {spec.Batch.MicroBatchesPerStep} micro-batches per step)");
        var layout = EmbeddedCluster.Layout(devices);
        Describe(console, spec, $"an in-process cluster of {layout.Count} silo(s) x {layout[0]} device(s)");
        await using var cluster = await EmbeddedCluster.StartAsync(layout, cancellation);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static(cluster.Gateways), cancellation: cancellation);
        var client = connection.Client;
        await client.WaitForDevicesAsync(devices, TimeSpan.FromSeconds(30), cancellation);
        var jobId = await client.SubmitAsync(spec, cancellation: cancellation);
        console.Plain.WriteLine($"job {jobId}");
        JobStatus final;
        try
        {
            final = await TrainingProgress.Show(console, spec.Steps, sink => JobWatcher.Follow(client, jobId, sink, cancellation));
        }
        catch (OperationCanceledException)
        {
            await client.CancelAsync(jobId, CancellationToken.None);
            throw;
        }
        var report = await client.GetReportAsync(jobId, cancellation);
        report.WriteTo(reportPath);
        LossSummary.Print(console, report);
        console.Plain.WriteLine($"{jobId}: {final.State}, {final.Plan}");
        if (final.Error is not null) console.Plain.WriteLine($"error: {final.Error}");
        console.Plain.WriteLine($"report: {reportPath}");
        console.Plain.WriteLine($"finalParameterDigest: {report.FinalParameterDigest}");
        return final.State == JobState.Completed ? 0 : 1;
    }

    private static void Describe(CliOutput console, TrainingSpec spec, string where) =>
        console.Ansi.MarkupLineInterpolated($"[bold]{spec.Name}[/]: {spec.Model.Layers} layers, d={spec.Model.DModel}, {spec.Model.Heads} heads, context {spec.Model.Context}; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {spec.Steps} steps on {where} ({spec.Runtime.ThreadsPerDevice} thread(s) per device)");
}
