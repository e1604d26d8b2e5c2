using System.CommandLine;
using Elastic.Training.Data;
using Elastic.Training.Engine;
using Elastic.Jobs.Reports;
using Elastic.Training.Sampling;
using Elastic.Jobs;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic train SPEC</c>: trains locally on this machine and writes the run report.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var spec = new Argument<FileInfo>("spec") { Description = "Job spec (JSON); see docs/job-spec.md" };
        var report = new Option<FileInfo?>("--report") { Description = "Where to write the run report (default: runs/NAME/report.json)" };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Run folder for the spec, trained weights and report (default: runs/NAME)" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt for the text sample printed after training", DefaultValueFactory = _ => "And God said" };
        var sampleTokens = new Option<int>("--sample-tokens") { Description = "Tokens to generate after training (0: none)", DefaultValueFactory = _ => 200 };
        var command = new Command("train", "Train a model locally from a job spec") { spec, report, output, prompt, sampleTokens };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, console => Execute(console,
            parse.GetValue(spec)!, parse.GetValue(report), parse.GetValue(output), parse.GetValue(prompt)!, parse.GetValue(sampleTokens), cancellation)));
        return command;
    }

    private static async Task<int> Execute(CliOutput console, FileInfo specFile, FileInfo? reportFile, DirectoryInfo? outDir, string prompt, int sampleTokens, CancellationToken cancellation)
    {
        if (sampleTokens < 0) throw new CliException($"--sample-tokens {sampleTokens}: must not be negative");
        var spec = SpecJson.Read(specFile.FullName);
        JobValidation.ThrowIfInvalid(spec);
        var run = outDir is null ? RunFolder.ForSpec(spec) : new RunFolder(outDir.FullName);
        var reportPath = reportFile?.FullName ?? run.ReportFile;
        var corpus = TokenCorpus.Load(spec);

        console.Ansi.MarkupLineInterpolated($"[bold]{spec.Name}[/]: {spec.Model.Layers} layers, d={spec.Model.DModel}, {spec.Model.Heads} heads, context {spec.Model.Context}; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {spec.Steps} steps on 1 device ({spec.Runtime.ThreadsPerDevice} thread{(spec.Runtime.ThreadsPerDevice == 1 ? "" : "s")})");
        var (report, sample) = await TrainingProgress.Show(console, spec.Steps, onStep => DeviceWorker.RunOnce("device-0", spec.Runtime.ThreadsPerDevice, () =>
        {
            using var trainer = new Trainer(spec, corpus);
            var result = TrainingLoop.Run(trainer, onStep, cancellation);
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
}
