using System.Text.Json.Nodes;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.HuggingFace;
using Elastic.Jobs;

namespace Elastic.Checkpoints;

/// <summary>
/// Turns a checkpoint of any layout into a Hugging Face model folder (<see cref="HfModelFolder"/>: <c>config.json</c> and one
/// consolidated <c>model.safetensors</c> with the ecosystem's names and shapes, in the job's output.dtype) for use outside Elastic. A MoE model
/// is Mixtral, or, where it has no Hugging Face form, keeps Elastic's names (see <see cref="HfConfig"/>). Optimizer moments are left out.
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
        HfModelFolder.Write(directory, model, tensors, new Dictionary<string, string> { ["job"] = manifest.JobId, ["step"] = $"{manifest.Step}" }, extra, spec.Output.Dtype);
        return (Path.Combine(directory, HfModelFolder.WeightsFile), Path.Combine(directory, HfConfig.FileName));
    }
}
