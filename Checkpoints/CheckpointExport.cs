using System.Text.Json;
using System.Text.Json.Nodes;
using Elastic.Checkpoints.Format;
using Elastic.Jobs;

namespace Elastic.Checkpoints;

/// <summary>
/// Turns a checkpoint of any layout into one consolidated <c>model.safetensors</c> with conventional GPT-2
/// parameter names (wte, wpe, h.N.ln_1, h.N.attn.c_attn, ..., ln_f) plus a <c>config.json</c>, for use outside
/// Elastic. A MoE layer's experts, stacked [E, ...] in checkpoints, are exported one per expert (h.N.mlp.experts.E.c_fc.weight
/// and so on) next to its router (h.N.mlp.router.weight). Optimizer moments are left out. Files appear under their final
/// names only when complete.
/// </summary>
public static class CheckpointExport
{
    public const string ParameterPrefix = "param/";

    public static async Task<(string Model, string Config)> ExportAsync(CheckpointReader reader, CheckpointManifest manifest, string directory, CancellationToken cancellation = default)
    {
        var parameters = manifest.Chunks.Where(c => c.Key.StartsWith(ParameterPrefix, StringComparison.Ordinal))
            .GroupBy(c => c.Key).Select(g => g.First()).OrderBy(c => c.Key, StringComparer.Ordinal).ToList();
        if (parameters.Count == 0) throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} holds no parameters");
        var bytes = await reader.ReadRegionsAsync(manifest, parameters.Select(p => (p.Key, TensorRegion.Whole(p.GlobalShape))).ToList(), cancellation);
        var (file, _) = Safetensors.Build(
            parameters.SelectMany((p, i) => Entries(p.Key[ParameterPrefix.Length..], p.DType, p.GlobalShape, bytes[i])).ToList(),
            new Dictionary<string, string> { ["format"] = "pt", ["job"] = manifest.JobId, ["step"] = $"{manifest.Step}" });

        Directory.CreateDirectory(directory);
        var (model, config) = (Path.Combine(directory, "model.safetensors"), Path.Combine(directory, "config.json"));
        await File.WriteAllBytesAsync(model + ".tmp", file, cancellation);
        await File.WriteAllTextAsync(config + ".tmp", Config(manifest).ToJsonString(new JsonSerializerOptions { WriteIndented = true }), cancellation);
        File.Move(model + ".tmp", model, overwrite: true);
        File.Move(config + ".tmp", config, overwrite: true);
        return (model, config);
    }

    /// <summary>The file's entries for one parameter: itself, or one per expert for a stacked expert tensor.</summary>
    private static IEnumerable<Safetensors.Entry> Entries(string name, string dtype, long[] shape, byte[] bytes)
    {
        const string experts = ".mlp.experts.";
        var at = name.IndexOf(experts, StringComparison.Ordinal);
        if (at < 0) return [new Safetensors.Entry(name, dtype, Gpt2Shape(name, shape), bytes)];
        var each = bytes.Length / (int)shape[0];
        return Enumerable.Range(0, (int)shape[0]).Select(e =>
            new Safetensors.Entry($"{name[..(at + experts.Length)]}{e}.{name[(at + experts.Length)..]}", dtype, shape[1..], bytes.AsMemory(e * each, each)));
    }

    /// <summary>
    /// Elastic keeps q, k and v stacked ([3, d, d] and [3, d]) so that tensor shards split heads; GPT-2 names them as one
    /// [3d, d] weight and [3d] bias, which are the same bytes.
    /// </summary>
    private static long[] Gpt2Shape(string key, long[] shape) =>
        key.EndsWith(".attn.c_attn.weight", StringComparison.Ordinal) || key.EndsWith(".attn.c_attn.bias", StringComparison.Ordinal)
            ? [shape[0] * shape[1], .. shape[2..]]
            : shape;

    /// <summary>The model's shape in GPT-2 config terms (n_layer, n_head, n_embd, ...) from the spec the checkpoint carries.</summary>
    private static JsonObject Config(CheckpointManifest manifest)
    {
        if (!manifest.Metadata.TryGetValue("spec", out var json))
            throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} carries no spec");
        var m = SpecJson.Parse(json).Model;
        var config = new JsonObject
        {
            ["model_type"] = "gpt2",
            ["n_layer"] = m.Layers,
            ["n_head"] = m.Heads,
            ["n_embd"] = m.DModel,
            ["n_inner"] = m.FfnSize,
            ["n_positions"] = m.Context,
            ["vocab_size"] = m.Vocab,
            ["activation_function"] = "gelu_new",
            ["tie_word_embeddings"] = m.TiedEmbeddings,
            ["layout"] = "linear weights are [out, in] (torch.nn.Linear), not GPT-2 Conv1D [in, out]",
            ["job"] = manifest.JobId,
            ["step"] = manifest.Step,
        };
        if (m.Moe is { } moe)
        {
            config["num_local_experts"] = moe.Experts;
            config["num_experts_per_tok"] = moe.TopK;
            config["moe_layers"] = new JsonArray(Enumerable.Range(0, m.Layers).Where(moe.IsMoeLayer).Select(l => (JsonNode)l).ToArray());
            config["capacity_factor"] = moe.CapacityFactor;
            config["router_aux_loss_coef"] = moe.AuxLoss;
            config["router_z_loss_coef"] = moe.ZLoss;
            config["moe_layout"] = "in each MoE layer the MLP is h.N.mlp.router.weight [E, d] and experts h.N.mlp.experts.E.{c_fc,c_proj}.{weight,bias}, "
                + "each the dense MLP's shape; gates: softmax of the router logits, the top num_experts_per_tok experts (ties to the lower index), "
                + "renormalised to sum to 1 when more than one; output: the gated sum of the chosen experts' MLP outputs";
        }
        return config;
    }
}
