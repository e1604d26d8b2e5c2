using System.Net;
using Elastic.Checkpoints.HuggingFace;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Tests.Training;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Tests.Checkpoints;

/// <summary>
/// model.init.from: a job starts from a Hugging Face folder's weights, its model taken from the folder's config, on any layout
/// with the same bits; a spec that contradicts the config, or a folder that is not there, is refused before anything runs.
/// </summary>
[Collection(StorageEnvironment.Name)]
public sealed class ModelImportTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-import-").FullName;

    /// <summary>
    /// A small Llama (with <paramref name="moe"/>, a Mixtral) trained for 3 steps and saved as a run folder is (Hugging Face
    /// format): what a user would import.
    /// </summary>
    private async Task<(string Folder, string Digest)> Pretrained(MoeSpec? moe = null)
    {
        var spec = TestSpecs.Tiny(steps: 3) with { Model = TestSpecs.Tiny().Model with { Architecture = "llama", KvHeads = 2, TiedEmbeddings = false, Layers = 4, Moe = moe } };
        var folder = Path.Combine(_folder, "pretrained");
        var digest = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            ModelFolder.Save(folder, spec, trainer);
            return trainer.ParameterDigest();
        });
        File.Delete(Path.Combine(folder, ModelFolder.SpecFile)); // as a folder from elsewhere would be: config and weights only
        return (folder, digest);
    }

    private static TrainingSpec FineTune(string from) => TestSpecs.Tiny(steps: 3, global: 16, micro: 2) with
    {
        Model = new ModelSpec { Dropout = 0.1, Init = new ModelInitSpec { From = from } },
        Optimizer = new OptimizerSpec { Lr = 1e-3, WarmupSteps = 1 },
    };

    [Fact]
    public async Task A_job_starts_from_the_imported_weights_with_the_configs_model_and_every_layout_keeps_the_bits()
    {
        var (folder, pretrained) = await Pretrained();

        var (spec, errors) = ModelImport.Resolve(FineTune(folder));

        Assert.Empty(errors);
        Assert.Equal(("llama", 4, 2, false), (spec.Model.Architecture, spec.Model.Layers, spec.Model.KvHeads, spec.Model.TiedEmbeddings));
        var start = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return trainer.ParameterDigest();
        });
        Assert.Equal(pretrained, start);
        var reference = await TestSpecs.ReferenceDigest(spec);
        Assert.NotEqual(start, reference);
        await using var plane = new DataPlane(IPAddress.Loopback);
        var layout = spec with { Parallel = new ParallelSpec { Pipeline = 2, Tensor = 2 } };
        var digests = await EngineGrid.Run(plane, layout, ParallelGrid.Of(1, 2, 2), sequenceParallel: true, (_, trainer) => EngineGrid.AllSteps(trainer).Digest, name: "import");
        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Fact]
    public async Task A_mixtral_folder_starts_a_job_with_its_experts_and_expert_parallelism_keeps_the_bits()
    {
        var (folder, pretrained) = await Pretrained(new MoeSpec { Experts = 4, TopK = 2, Every = 1 });

        var (spec, errors) = ModelImport.Resolve(FineTune(folder));

        Assert.Empty(errors);
        Assert.Equal((4, 2, 1, (double?)null), (spec.Model.Moe!.Experts, spec.Model.Moe.TopK, spec.Model.Moe.Every, spec.Model.Moe.CapacityFactor));
        Assert.Equal(pretrained, await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return trainer.ParameterDigest();
        }));
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var plane = new DataPlane(IPAddress.Loopback);
        var layout = spec with { Parallel = new ParallelSpec { Expert = 2 } };
        var digests = await EngineGrid.Run(plane, layout, ParallelGrid.Of(2, 1, 1, 2), sequenceParallel: true, (_, trainer) => EngineGrid.AllSteps(trainer).Digest, name: "import-mixtral");
        Assert.All(digests, d => Assert.Equal(reference, d));
        var contradicting = FineTune(folder) with { Model = FineTune(folder).Model with { Moe = new MoeSpec { Experts = 8 } } };
        Assert.Equal("model.moe.experts", Assert.Single(ModelImport.Resolve(contradicting).Errors).Field);
    }

    [Fact]
    public async Task A_model_in_azure_blob_storage_starts_a_job_as_the_same_folder_on_disk_does()
    {
        var (folder, pretrained) = await Pretrained();
        Environment.SetEnvironmentVariable(StoreLocation.ConnectionVariable, azurite.Azurite.ConnectionString);
        var blob = $"az://models-{Guid.NewGuid():N}/llama/small";
        var location = StoreLocation.Open(blob);
        foreach (var file in Directory.GetFiles(folder))
            await location.Store.PutCreateOnlyAsync(location.NameOf(Path.GetFileName(file)), await File.ReadAllBytesAsync(file));

        var (spec, errors) = ModelImport.Resolve(FineTune(blob));

        Assert.Empty(errors);
        Assert.Equal(("llama", 4), (spec.Model.Architecture, spec.Model.Layers));
        Assert.Equal(pretrained, await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return trainer.ParameterDigest();
        }));
        var (_, missing) = ModelImport.Resolve(FineTune(blob + "-absent"));
        Assert.Contains("no config.json", Assert.Single(missing).Message);
    }

    [Fact]
    public async Task A_spec_that_contradicts_the_config_or_a_missing_folder_is_refused_by_field()
    {
        var (folder, _) = await Pretrained();

        var (_, contradiction) = ModelImport.Resolve(FineTune(folder) with { Model = FineTune(folder).Model with { Layers = 6, Heads = 8 } });
        var (_, missing) = ModelImport.Resolve(FineTune(Path.Combine(_folder, "nowhere")));

        Assert.Equal(["model.layers", "model.heads"], contradiction.Select(e => e.Field));
        Assert.Contains("which gives 4", contradiction[0].Message);
        Assert.Equal("model.init.from", Assert.Single(missing).Field);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
