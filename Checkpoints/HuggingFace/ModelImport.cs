using Elastic.Checkpoints.Stores;
using Elastic.Jobs;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// A job that starts from a Hugging Face model (<c>model.init.from</c>): its model's fields are the config's, and the folder's
/// tensors must be exactly that model's. Resolved where a spec is accepted (the CLI before it trains or submits, a cluster's
/// registry before it admits), so that every unit, the planner and the memory estimate see the model that will be trained.
/// </summary>
public static class ModelImport
{
    /// <summary>
    /// The spec with its model from the config (dropout and tensor shards stay the spec's) and, when it leaves data.tokenizer at
    /// <c>byte</c>, the folder's tokenizer.json or tokenizer.model; or every reason it cannot be.
    /// </summary>
    public static (TrainingSpec Spec, IReadOnlyList<SpecError> Errors) Resolve(TrainingSpec spec)
    {
        if (spec.Model?.Init?.From is not { } from) return (spec, []);
        var blob = StoreLocation.IsBlob(from);
        if (!blob && !Path.IsPathFullyQualified(from)) return (spec, [new SpecError("model.init.from", from, "must be an absolute path (a spec file's relative path is resolved against its folder) or az://CONTAINER/PREFIX")]);
        if (!blob && !Directory.Exists(from)) return (spec, [new SpecError("model.init.from", from, "no such folder")]);
        try
        {
            // Reads every tensor once to check names, shapes and dtypes: a job never starts on weights it cannot load.
            var (model, _) = HfModelFolder.Read(from, spec.Model);
            var contradictions = HfConfig.Contradictions(spec.Model, model, $"{from.TrimEnd('/')}/{HfConfig.FileName}").ToList();
            if (contradictions.Count > 0) return (spec, contradictions);
            // A spec that leaves the tokenizer at its default takes the model's own (from a local folder: tokenizers are read from files).
            var tokenizer = blob ? null : HfModelFolder.TokenizerIn(from);
            var data = spec.Data is { Tokenizer: "byte" } && tokenizer is not null ? spec.Data with { Tokenizer = tokenizer } : spec.Data;
            return (spec with { Model = model, Data = data }, []);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            return (spec, [new SpecError("model.init.from", from, e.Message)]);
        }
    }

    /// <summary>The starting weights by Elastic name (float32 bytes), for a spec <see cref="Resolve"/> has accepted.</summary>
    public static IReadOnlyDictionary<string, byte[]> Weights(ModelSpec model) =>
        HfModelFolder.Read(model.Init?.From ?? throw new ArgumentException("the model has no model.init.from", nameof(model)), model).Parameters;
}
