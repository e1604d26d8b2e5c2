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
        Assert.Equal(ParameterLayout.Of(spec.Model).Select(p => p.Name), names);
        Assert.Equal([3L * spec.Model.DModel, spec.Model.DModel], attention); // GPT-2's shape for q, k and v
        Assert.Equal(digest, loaded);
        var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(config))!;
        Assert.Equal(spec.Model.Layers, (int)json["n_layer"]!);
        Assert.Equal(spec.Model.DModel, (int)json["n_embd"]!);
    }

    [Fact]
    public async Task A_moe_model_exports_one_tensor_per_expert_and_a_config_that_says_how_they_are_routed()
    {
        var spec = TestSpecs.Tiny(steps: 2) with { Model = TestSpecs.Tiny().Model with { Moe = new Elastic.Jobs.MoeSpec { Experts = 4, TopK = 2, Every = 2 } } };
        using var device = new DeviceWorker("export-moe-device");
        var trainer = await device.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var (state, whole) = await device.Run(1, () =>
        {
            for (var step = 1; step <= 2; step++) trainer.Step(step);
            return (EngineCheckpoint.Capture(trainer), trainer.WholeParameters().ToDictionary(p => p.Name, p => p.Tensor.clone()));
        });
        var store = new LocalDirectoryStore(Path.Combine(_folder, "store"));
        var layout = new CheckpointLayout("jobs/export-moe");
        var manifest = await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, layout), "export-moe", spec, 2, 1, "dp=1", state);

        var (model, config) = await CheckpointExport.ExportAsync(new CheckpointReader(store, layout), manifest, Path.Combine(_folder, "out"));

        var mismatches = await device.Run(1, () =>
        {
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(model);
            var wrong = new List<string>();
            foreach (var name in new[] { "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias" })
                for (var e = 0; e < 4; e++)
                    if (!tensors[$"h.1.mlp.experts.{e}.{name}"].equal(whole[$"h.1.mlp.experts.{name}"][e]).all().item<bool>()) wrong.Add($"expert {e} {name}");
            if (!tensors["h.1.mlp.router.weight"].equal(whole["h.1.mlp.router.weight"]).all().item<bool>()) wrong.Add("router");
            if (tensors.Keys.Any(k => k.StartsWith("h.1.mlp.c_fc", StringComparison.Ordinal) || k == "h.1.mlp.experts.c_fc.weight")) wrong.Add("a dense or stacked MLP tensor in a MoE layer");
            if (!tensors.ContainsKey("h.0.mlp.c_fc.weight")) wrong.Add("layer 0's dense MLP");
            trainer.Dispose();
            return wrong;
        });
        Assert.Empty(mismatches);
        var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(config))!;
        Assert.Equal(4, (int)json["num_local_experts"]!);
        Assert.Equal(2, (int)json["num_experts_per_tok"]!);
        Assert.Equal([1], json["moe_layers"]!.AsArray().Select(n => (int)n!));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
