using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Engine;
using Elastic.Training.Model;

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

        var (loaded, names, attention) = await device.Run(1, () =>
        {
            // TorchSharp.PyBridge's reader, independent of ours.
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(model);
            var ordered = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
            var result = (ParameterDigest.Compute(ordered.Select(t => (t.Key, t.Value))), ordered.Select(t => t.Key).ToList(), tensors["h.0.attn.c_attn.weight"].shape);
            trainer.Dispose();
            return result;
        });
        Assert.Equal(ParameterLayout.Gpt(spec.Model).Select(p => p.Name), names);
        Assert.Equal([3L * spec.Model.DModel, spec.Model.DModel], attention); // GPT-2's shape for q, k and v
        Assert.Equal(digest, loaded);
        var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(config))!;
        Assert.Equal(spec.Model.Layers, (int)json["n_layer"]!);
        Assert.Equal(spec.Model.DModel, (int)json["n_embd"]!);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
