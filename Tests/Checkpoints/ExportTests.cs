using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Tests.Checkpoints;

public sealed class ExportTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-export-").FullName;

    [Fact]
    public async Task An_exported_checkpoint_is_a_hugging_face_gpt2_that_an_independent_reader_loads_with_the_trained_values()
    {
        var spec = TestSpecs.Tiny(steps: 3);
        using var device = new DeviceWorker("export-device");
        var trainer = await device.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var (state, whole) = await device.Run(1, () =>
        {
            for (var step = 1; step <= 3; step++) trainer.Step(step);
            return (EngineCheckpoint.Capture(trainer), trainer.WholeParameters().ToDictionary(p => p.Name, p => p.Tensor.clone()));
        });
        var store = new LocalDirectoryStore(Path.Combine(_folder, "store"));
        var layout = new CheckpointLayout("jobs/export");
        var manifest = await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, layout), "export", spec, 3, 1, "dp=1", state);

        var (model, config) = await CheckpointExport.ExportAsync(new CheckpointReader(store, layout), manifest, Path.Combine(_folder, "out"));

        var (names, mismatches) = await device.Run(1, () =>
        {
            // TorchSharp.PyBridge's reader, independent of ours; GPT-2's Conv1D weights are the transposes of Elastic's [out, in].
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(model);
            var wrong = new List<string>();
            void Expect(string hf, TorchSharp.torch.Tensor value)
            {
                if (!tensors[hf].shape.SequenceEqual(value.shape) || !tensors[hf].equal(value).all().item<bool>()) wrong.Add(hf);
            }
            Expect("transformer.wte.weight", whole["wte.weight"]);
            Expect("transformer.wpe.weight", whole["wpe.weight"]);
            Expect("transformer.ln_f.bias", whole["ln_f.bias"]);
            Expect("transformer.h.1.attn.c_attn.weight", whole["h.1.attn.c_attn.weight"].reshape(3 * spec.Model.DModel, spec.Model.DModel).t());
            Expect("transformer.h.1.attn.c_attn.bias", whole["h.1.attn.c_attn.bias"].reshape(3 * spec.Model.DModel));
            Expect("transformer.h.0.attn.c_proj.weight", whole["h.0.attn.c_proj.weight"].t());
            Expect("transformer.h.0.mlp.c_fc.weight", whole["h.0.mlp.c_fc.weight"].t());
            Expect("transformer.h.0.mlp.c_proj.weight", whole["h.0.mlp.c_proj.weight"].t());
            Expect("transformer.h.0.ln_2.weight", whole["h.0.ln_2.weight"]);
            var result = (tensors.Keys.Order(StringComparer.Ordinal).ToList(), wrong);
            trainer.Dispose();
            return result;
        });
        Assert.Empty(mismatches);
        // Every parameter once under the name GPT2LMHeadModel gives it; the tied head is the token embedding.
        Assert.Equal(ParameterLayout.Of(spec.Model).Select(p => "transformer." + p.Name).Order(StringComparer.Ordinal), names);
        var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(config))!;
        Assert.Equal("gpt2", (string)json["model_type"]!);
        Assert.Equal("GPT2LMHeadModel", (string)json["architectures"]![0]!);
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
