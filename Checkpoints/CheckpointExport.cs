using System.Text.Json.Nodes;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.HuggingFace;
using Elastic.Jobs;

namespace Elastic.Checkpoints;

/// <summary>
/// Turns a checkpoint of any layout into a Hugging Face model folder (<see cref="HfModelFolder"/>: <c>config.json</c> and one
/// consolidated <c>model.safetensors</c> with the ecosystem's names and shapes, in the job's output.dtype) for use outside Elastic. A MoE model
/// keeps Elastic's names, each expert apart, with a config that says how they are routed. Optimizer moments are left out.
/// </summary>
public static class CheckpointExport
{
    public const string ParameterPrefix = "param/";

    public static async Task<(string Model, string Config)> ExportAsync(CheckpointReader reader, CheckpointManifest manifest, string directory, CancellationToken cancellation = default)
    {
        var parameters = manifest.Chunks.Where(c => c.Key.StartsWith(ParameterPrefix, StringComparison.Ordinal))
            .GroupBy(c => c.Key).Select(g => g.First()).OrderBy(c => c.Key, StringComparer.Ordinal).ToList();
        if (parameters.Count == 0) throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} holds no parameters");
        if (!manifest.Metadata.TryGetValue("spec", out var json))
            throw new CheckpointCorruptException($"checkpoint of step {manifest.Step} carries no spec");
        var spec = SpecJson.Parse(json);
        var model = spec.Model;
        var bytes = await reader.ReadRegionsAsync(manifest, parameters.Select(p => (p.Key, TensorRegion.Whole(p.GlobalShape))).ToList(), cancellation);
        var tensors = parameters.Select((p, i) => new HfModelFolder.Tensor(p.Key[ParameterPrefix.Length..], p.GlobalShape, bytes[i])).ToList();
        var extra = new JsonObject { ["elastic_job"] = manifest.JobId, ["elastic_step"] = manifest.Step };
        if (model.Moe is { } moe) AddExperts(extra, moe, model);
        HfModelFolder.Write(directory, model, tensors, new Dictionary<string, string> { ["job"] = manifest.JobId, ["step"] = $"{manifest.Step}" }, extra, spec.Output.Dtype);
        return (Path.Combine(directory, HfModelFolder.WeightsFile), Path.Combine(directory, HfConfig.FileName));
    }

    /// <summary>How a MoE model's experts are laid out and routed (no Hugging Face GPT-2 has them).</summary>
    private static void AddExperts(JsonObject config, MoeSpec moe, ModelSpec model)
    {
        var layers = model.Layers;
        var experts = model.IsLlama
            ? "{gate_up.weight [2, f, d] (SwiGLU's gate and up), c_proj.weight [d, f]}"
            : "{c_fc,c_proj}.{weight,bias}";
        config["num_local_experts"] = moe.Experts;
        config["num_experts_per_tok"] = moe.TopK;
        config["moe_layers"] = new JsonArray(Enumerable.Range(0, layers).Where(moe.IsMoeLayer).Select(l => (JsonNode)l).ToArray());
        config["capacity_factor"] = moe.CapacityFactor;
        config["router_aux_loss_coef"] = moe.AuxLoss;
        config["router_z_loss_coef"] = moe.ZLoss;
        config["moe_layout"] = "Elastic's names, linear weights [out, in]: in each MoE layer the MLP is h.N.mlp.router.weight [E, d] and experts "
            + $"h.N.mlp.experts.E.{experts}, each the dense MLP's shape; gates: softmax of the router logits, the top "
            + "num_experts_per_tok experts (ties to the lower index), renormalised to sum to 1 when more than one; output: the gated sum of the "
            + "chosen experts' MLP outputs";
    }
}
