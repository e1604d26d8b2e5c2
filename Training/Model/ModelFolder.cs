using Elastic.Jobs;
using TorchSharp;

namespace Elastic.Training.Model;

/// <summary>
/// A trained model on disk: the spec that built it (spec.json) and its weights (model.dat, TorchSharp's
/// format). Files are written under temporary names and renamed, so a reader never sees half a model.
/// </summary>
public static class ModelFolder
{
    public const string SpecFile = "spec.json";
    public const string WeightsFile = "model.dat";

    public static void Save(string directory, TrainingSpec spec, GptModel model)
    {
        Directory.CreateDirectory(directory);
        var (specPath, weightsPath) = (Path.Combine(directory, SpecFile), Path.Combine(directory, WeightsFile));
        model.save(weightsPath + ".tmp");
        File.WriteAllText(specPath + ".tmp", SpecJson.Serialize(spec));
        File.Move(weightsPath + ".tmp", weightsPath, overwrite: true);
        File.Move(specPath + ".tmp", specPath, overwrite: true);
    }

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, SpecFile)) && File.Exists(Path.Combine(directory, WeightsFile));

    /// <summary>Rebuilds the trained model; the caller owns (and disposes) it.</summary>
    public static (TrainingSpec Spec, GptModel Model) Load(string directory)
    {
        if (!Exists(directory))
            throw new FileNotFoundException($"{directory}: no trained model there (expected {SpecFile} and {WeightsFile})");
        var spec = SpecJson.Parse(File.ReadAllText(Path.Combine(directory, SpecFile)));
        var model = new GptModel(spec.Model, spec.Seed);
        model.load(Path.Combine(directory, WeightsFile));
        return (spec, model);
    }
}
