using System.Net;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Tests.Training.Pipeline;

/// <summary>
/// The whole engine as a pipeline (each stage on its own device thread, activations and their gradients over the data
/// plane): every (dp, pp, tp) layout and both schedules end training with the parameter digest of one device, tied
/// embeddings and dropout included, and report the same losses and gradient norms at every step.
/// </summary>
public sealed class PipelineTrainingTests
{
    // Four layers so that pp = 4 and pp = 2 x v = 2 have a layer per chunk; eight micro-batches of 2, dropout on.
    private static TrainingSpec Spec(int pipeline = 1, string schedule = "1f1b", int virtualStages = 1, bool tied = true) =>
        TestSpecs.Tiny(steps: 3, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4, TiedEmbeddings = tied },
            Parallel = new ParallelSpec { Pipeline = pipeline, Schedule = schedule, VirtualStages = virtualStages },
        };

    public static TheoryData<int, int, int, string, int> Layouts => new()
    {
        { 1, 2, 1, "1f1b", 1 },
        { 2, 2, 1, "1f1b", 1 },
        { 1, 4, 1, "1f1b", 1 },
        { 1, 2, 2, "1f1b", 1 },
        { 1, 2, 1, "interleaved", 2 },
    };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Any_pipeline_layout_ends_with_the_one_device_digest_and_the_same_losses(int dp, int pp, int tp, string schedule, int virtualStages)
    {
        var spec = Spec(pp, schedule, virtualStages);
        var reference = await TestSpecs.OneDeviceSteps(spec);

        var ranks = await Train(spec, ParallelGrid.Of(dp, pp, tp), EngineGrid.AllSteps);

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Digest, r.Digest);
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Fact]
    public async Task Untied_embeddings_split_over_two_stages_keep_the_one_device_digest()
    {
        var spec = Spec(pipeline: 2, tied: false);
        var reference = await TestSpecs.ReferenceDigest(spec);

        var digests = await Train(spec, ParallelGrid.Of(1, 2, 1), trainer =>
        {
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        });

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Fact]
    public async Task The_held_out_loss_of_a_pipeline_is_the_one_device_loss()
    {
        var spec = Spec(pipeline: 4);
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            trainer.Step(1);
            return trainer.EvaluateHeldOut();
        });

        var losses = await Train(spec, ParallelGrid.Of(1, 4, 1), trainer =>
        {
            trainer.Step(1);
            return trainer.Trainer.EvaluateHeldOut();
        });

        Assert.All(losses, loss => Assert.Equal(reference, loss));
    }

    [Fact]
    public async Task A_pipeline_exports_the_whole_model_from_its_first_stage()
    {
        var spec = Spec(pipeline: 2);
        var reference = await TestSpecs.ReferenceDigest(spec);
        var folder = Directory.CreateTempSubdirectory("elastic-pp-export-").FullName;

        await Train(spec, ParallelGrid.Of(1, 2, 1), trainer =>
        {
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            ModelFolder.Save(folder, spec, trainer.Trainer);
            return true;
        });

        var (_, model) = ModelFolder.Load(folder);
        using (model) Assert.Equal(reference, ParameterDigest.Compute(model));
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(1, 4)]
    [InlineData(4, 2)]
    public async Task A_checkpoint_saved_at_one_pipeline_depth_resumes_at_another_to_the_uninterrupted_digest(int savedAt, int resumedAt)
    {
        var spec = Spec() with { Steps = 4 };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var store = new MemoryBlobStore();
        var layout = new CheckpointLayout("jobs/pp-resume");

        // Each stage writes the regions its chunks own after 2 steps (the last stage not its copy of the tied embedding).
        var parts = await Train(spec, ParallelGrid.Of(1, savedAt, 1), trainer =>
        {
            for (var step = 1; step <= 2; step++) trainer.Step(step);
            return new CheckpointWriter(store, layout).WriteChunksAsync(2, 1, $"s{trainer.Trainer.Stage.Rank}", EngineCheckpoint.Capture(trainer.Trainer)).GetAwaiter().GetResult();
        });
        var chunks = parts.SelectMany(p => p).ToList();
        Assert.Equal(chunks.Count, chunks.Select(c => c.Key).Distinct().Count());
        var manifest = await new CheckpointWriter(store, layout).CommitAsync(new CheckpointManifest
        {
            JobId = "pp-resume", Step = 2, Generation = 1, Plan = $"dp=1 pp={savedAt}", CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
        });

        var digests = await Train(spec, ParallelGrid.Of(1, resumedAt, 1), trainer =>
        {
            var state = EngineCheckpoint.ReadAsync(new CheckpointReader(store, layout), manifest, EngineCheckpoint.Layout(trainer.Trainer)).GetAwaiter().GetResult();
            trainer.Trainer.Restore(manifest.Step, (key, _) => state[key]);
            for (var step = 3; step <= spec.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        });

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    private static async Task<T[]> Train<T>(TrainingSpec spec, ParallelGrid grid, Func<DataParallelTrainer, T> work)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        return await EngineGrid.Run(plane, spec, grid, sequenceParallel: true, (_, trainer) => work(trainer), name: $"pipeline-{grid}");
    }
}
