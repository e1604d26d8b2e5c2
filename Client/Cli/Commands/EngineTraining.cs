using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Cli.Commands;

/// <summary>`train` directly on the engine, on one device thread; interrupted, it checkpoints into the run folder, and --resume continues from there.</summary>
internal static class EngineTraining
{
    /// <summary>Where in the run folder's checkpoint store the engine's checkpoints go.</summary>
    private static readonly CheckpointLayout Layout = new("engine");

    public static async Task<int> Run(CliOutput console, TrainingSpec spec, TokenCorpus corpus, string deviceKind, bool resume, RunTarget target, CancellationToken cancellation)
    {
        var store = new LocalDirectoryStore(target.Run.Checkpoints);
        var reader = new CheckpointReader(store, Layout);
        var from = resume ? await ResumePoint(reader, spec, target.Run) : null;
        var torchDevice = deviceKind == "cuda" ? new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, 0) : TorchSharp.torch.CPU;
        TrainCommand.Describe(console, spec, $"1 device ({ComputeDevices.Describe(torchDevice)})");
        var threads = spec.Runtime.ThreadsPerDevice;
        using var interrupts = new Interrupts(cancellation, console.Plain.WriteLine);
        using var device = new DeviceWorker("device-0");
        var trainer = await device.Run(threads, () => new Trainer(spec, corpus, torchDevice));
        try
        {
            if (from is { } manifest)
            {
                var state = await EngineCheckpoint.ReadAsync(reader, manifest, await device.Run(threads, () => EngineCheckpoint.Layout(trainer)), cancellation);
                await device.Run(threads, () =>
                {
                    trainer.Restore(manifest.Step, (key, _) => state[key]);
                    return true;
                });
                console.Plain.WriteLine($"resumed from the checkpoint of step {manifest.Step} in {target.Run.Checkpoints}");
            }
            var report = await TrainingProgress.Show(console, spec.Steps, sink => device.Run(threads, () =>
            {
                var result = TrainingLoop.Run(trainer, sink.Step, interrupts.Stop);
                target.Run.Save(spec, trainer);
                return result;
            }));
            if (report.Completed)
            {
                await TrainCommand.Finish(console, report, target.Run, target);
                return 0;
            }
            var step = await device.Run(threads, () => trainer.CompletedSteps);
            if (step == (from?.Step ?? 0))
            {
                console.Plain.WriteLine($"interrupted before a step was trained; nothing new to save (resume with: {target.ResumeHint})");
                return CommandRunner.Cancelled;
            }
            var captured = await device.Run(threads, () => EngineCheckpoint.Capture(trainer));
            var generation = ((await reader.LatestAsync(cancellation))?.Generation ?? 0) + 1;
            await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, Layout), "engine", spec, step, generation, "engine", captured, CancellationToken.None);
            report.WriteTo(target.ReportPath);
            return TrainCommand.Interrupted(console, step, spec.Steps, target.Run.Checkpoints, target);
        }
        finally
        {
            await device.Run(threads, () =>
            {
                trainer.Dispose();
                return true;
            });
        }
    }

    /// <summary>The checkpoint an interrupted run left, if it was saved for this very spec.</summary>
    private static async Task<Elastic.Checkpoints.Format.CheckpointManifest> ResumePoint(CheckpointReader reader, TrainingSpec spec, RunFolder run)
    {
        var latest = await reader.LatestAsync()
            ?? throw new CliException($"--resume: no checkpoint in {run.Checkpoints} (an interrupted `elastic train` saves one there)");
        var manifest = await reader.ReadManifestAsync(latest.Manifest);
        if (!manifest.Metadata.TryGetValue("spec", out var saved) || saved != SpecJson.Serialize(spec))
            throw new CliException($"--resume: the checkpoint of step {manifest.Step} in {run.Checkpoints} was saved by another spec; resume with the spec that started the run");
        return manifest;
    }
}
