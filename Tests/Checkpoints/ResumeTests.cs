using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Engine;

namespace Elastic.Tests.Checkpoints;

public sealed class ResumeTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-resume-").FullName;

    [Fact]
    public async Task A_run_resumed_from_a_checkpoint_ends_bitwise_equal_to_the_uninterrupted_run()
    {
        var spec = TestSpecs.Tiny(steps: 6, dropout: 0.1);
        var uninterrupted = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer);
        });

        var store = new LocalDirectoryStore(_folder);
        var layout = new CheckpointLayout("jobs/resume");
        using var worker = new DeviceWorker("resume-device");
        var first = await worker.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var state = await worker.Run(1, () =>
        {
            for (var step = 1; step <= 3; step++) first.Step(step);
            return EngineCheckpoint.Capture(first);
        });
        // The host copy is all the save needs: training could go on (here: the first trainer goes away).
        await worker.Run(1, () => { first.Dispose(); return true; });
        var manifest = await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, layout), "resume", spec, step: 3, generation: 1, plan: "dp=1", state);

        var reader = new CheckpointReader(store, layout);
        var latest = await reader.LatestAsync();
        Assert.Equal(3, latest!.Step);
        var resumed = await worker.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var saved = await EngineCheckpoint.ReadAsync(reader, await reader.ReadManifestAsync(latest.Manifest), await worker.Run(1, () => EngineCheckpoint.Layout(resumed)));
        var report = await worker.Run(1, () =>
        {
            resumed.Restore(manifest.Step, (key, _) => saved[key]);
            var result = TrainingLoop.Run(resumed);
            resumed.Dispose();
            return result;
        });

        Assert.Equal([4L, 5, 6], report.Steps.Select(s => s.Step));
        Assert.Equal(uninterrupted.Steps.Skip(3).Select(s => s.Loss), report.Steps.Select(s => s.Loss));
        Assert.Equal(uninterrupted.FinalParameterDigest, report.FinalParameterDigest);
        Assert.True(report.Completed);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
