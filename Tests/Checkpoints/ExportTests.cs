using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using TorchSharp.PyBridge;

namespace Elastic.Tests.Checkpoints;

public sealed class ExportTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-export-").FullName;

    [Fact]
    public async Task An_exported_model_loads_with_an_independent_safetensors_reader_and_matches_the_trained_one()
    {
        var spec = TestSpecs.Tiny(steps: 3);
        using var device = new DeviceWorker("export-device");
        var trainer = await device.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var (state, digest) = await device.Run(1, () =>
        {
            for (var step = 1; step <= 3; step++) trainer.Step(step);
            return (EngineCheckpoint.Capture(trainer), trainer.ParameterDigest());
        });
        var store = new LocalDirectoryStore(Path.Combine(_folder, "store"));
        var layout = new CheckpointLayout("jobs/export");
        var manifest = await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, layout), "export", spec, 3, 1, "dp=1", state);

        var (model, config) = await CheckpointExport.ExportAsync(new CheckpointReader(store, layout), manifest, Path.Combine(_folder, "out"));

        var loaded = await device.Run(1, () =>
        {
            // A model with other initial weights, filled by TorchSharp.PyBridge's reader (strict: every name must match).
            using var fresh = new GptModel(spec.Model, seed: 999);
            fresh.load_safetensors(model, strict: true);
            var result = ParameterDigest.Compute(fresh);
            trainer.Dispose();
            return result;
        });
        Assert.Equal(digest, loaded);
        var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(config))!;
        Assert.Equal(spec.Model.Layers, (int)json["n_layer"]!);
        Assert.Equal(spec.Model.DModel, (int)json["n_embd"]!);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
