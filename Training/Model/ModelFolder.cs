using Elastic.Checkpoints.HuggingFace;
using Elastic.Jobs;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// A trained model on disk in Hugging Face's layout (<see cref="HfModelFolder"/>: config.json, model.safetensors), loadable by
/// the ecosystem, with the spec that built it (spec.json) so that Elastic rebuilds it exactly. A Hugging Face folder without
/// a spec loads too, its model from config.json; a tokenizer.json or tokenizer.model in the folder is the model's tokenizer. Files are written under temporary names and renamed, so a reader never sees
/// half a model.
/// </summary>
public static class ModelFolder
{
    public const string SpecFile = "spec.json";
    public const string WeightsFile = HfModelFolder.WeightsFile;

    /// <summary>
    /// Saves the whole model. Every rank of a replica calls it together (split parameters are gathered over the tensor
    /// group, stages send theirs to the first; under ZeRO 3 every replica, to gather the parameters); the first stage's tensor
    /// rank 0 writes, of the replica told to <paramref name="write"/>.
    /// </summary>
    public static void Save(string directory, TrainingSpec spec, Engine.Trainer trainer, bool write = true)
    {
        List<HfModelFolder.Tensor> parameters;
        using (var scope = NewDisposeScope())
            parameters = trainer.WholeParameters().Select(p => new HfModelFolder.Tensor(p.Name, p.Tensor.shape, p.Tensor.detach().cpu().contiguous().bytes.ToArray())).ToList();
        if (!write || trainer.Model.Group.Rank != 0 || trainer.Stage.Rank != 0) return;
        HfModelFolder.Write(directory, spec.Model, parameters, extra: new System.Text.Json.Nodes.JsonObject { ["elastic_tokenizer"] = Elastic.Data.Tokenizers.Recorded(spec.Data.Tokenizer) },
            dtype: spec.Output.Dtype);
        // A tokenizer from a file travels with the model, under the name the ecosystem looks for.
        if (SpecValidator.IsTokenizerFile(spec.Data.Tokenizer) && TokenizerCopy(directory, spec.Data.Tokenizer) is var copy && copy != spec.Data.Tokenizer)
            File.Copy(spec.Data.Tokenizer, copy, overwrite: true);
        var specPath = Path.Combine(directory, SpecFile);
        File.WriteAllText(specPath + ".tmp", SpecJson.Serialize(spec));
        File.Move(specPath + ".tmp", specPath, overwrite: true);
    }

    /// <summary>Where a model folder keeps a tokenizer file of this kind (<see cref="HfModelFolder.TokenizerFiles"/>).</summary>
    private static string TokenizerCopy(string directory, string tokenizer) =>
        Path.Combine(directory, HfModelFolder.TokenizerFiles[tokenizer.EndsWith(".model", StringComparison.OrdinalIgnoreCase) ? 1 : 0]);

    /// <summary>Whether <paramref name="directory"/> holds a model: Elastic's (with its spec) or any Hugging Face folder.</summary>
    public static bool Exists(string directory) => HfModelFolder.Exists(directory);

    /// <summary>
    /// Rebuilds the model on one device; the caller owns (and disposes) it. Without a spec.json (a Hugging Face folder from
    /// elsewhere) the spec is the defaults with the config's model, dropout off.
    /// </summary>
    public static (TrainingSpec Spec, DecoderModel Model) Load(string directory)
    {
        if (!Exists(directory))
            throw new FileNotFoundException($"{directory}: no model there (expected {HfConfig.FileName} and {WeightsFile})");
        var specPath = Path.Combine(directory, SpecFile);
        var spec = File.Exists(specPath) ? SpecJson.Parse(File.ReadAllText(specPath)) : new TrainingSpec { Model = new ModelSpec { Dropout = 0 } };
        var (config, weights) = HfModelFolder.Read(directory, spec.Model);
        var tokenizer = HfModelFolder.TokenizerIn(directory);
        spec = spec with { Model = config, Data = tokenizer is null ? spec.Data : spec.Data with { Tokenizer = tokenizer } };
        var model = new DecoderModel(spec.Model, spec.Seed);
        model.Load(weights);
        return (spec, model);
    }
}
