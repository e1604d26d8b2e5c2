using Elastic.Checkpoints.Format;
using Elastic.Jobs;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// A trained model on disk: the spec that built it (spec.json) and its weights, every parameter whole (model.safetensors).
/// Files are written under temporary names and renamed, so a reader never sees half a model.
/// </summary>
public static class ModelFolder
{
    public const string SpecFile = "spec.json";
    public const string WeightsFile = "model.safetensors";

    /// <summary>
    /// Saves the whole model. Every rank of a replica calls it together (split parameters are gathered over the tensor
    /// group, stages send theirs to the first; under ZeRO 3 every replica, to gather the parameters); the first stage's tensor
    /// rank 0 writes, of the replica told to <paramref name="write"/>.
    /// </summary>
    public static void Save(string directory, TrainingSpec spec, Engine.Trainer trainer, bool write = true)
    {
        byte[] file;
        using (var scope = NewDisposeScope())
            file = Safetensors.Build(trainer.WholeParameters().Select(p =>
                new Safetensors.Entry(p.Name, "F32", p.Tensor.shape, p.Tensor.detach().cpu().contiguous().bytes.ToArray())).ToList()).File;
        if (!write || trainer.Model.Group.Rank != 0 || trainer.Stage.Rank != 0) return;
        Directory.CreateDirectory(directory);
        var (specPath, weightsPath) = (Path.Combine(directory, SpecFile), Path.Combine(directory, WeightsFile));
        File.WriteAllBytes(weightsPath + ".tmp", file);
        File.WriteAllText(specPath + ".tmp", SpecJson.Serialize(spec));
        File.Move(weightsPath + ".tmp", weightsPath, overwrite: true);
        File.Move(specPath + ".tmp", specPath, overwrite: true);
    }

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, SpecFile)) && File.Exists(Path.Combine(directory, WeightsFile));

    /// <summary>Rebuilds the trained model on one device; the caller owns (and disposes) it.</summary>
    public static (TrainingSpec Spec, DecoderModel Model) Load(string directory)
    {
        if (!Exists(directory))
            throw new FileNotFoundException($"{directory}: no trained model there (expected {SpecFile} and {WeightsFile})");
        var spec = SpecJson.Parse(File.ReadAllText(Path.Combine(directory, SpecFile)));
        var saved = Safetensors.Read(File.ReadAllBytes(Path.Combine(directory, WeightsFile))).ToDictionary(e => e.Name);
        var model = new DecoderModel(spec.Model, spec.Seed);
        foreach (var p in model.Parameters)
        {
            if (!saved.TryGetValue(p.Name, out var entry) || !entry.Shape.SequenceEqual(p.Layout.Shape))
                throw new InvalidDataException($"{directory}: {WeightsFile} has no {p.Name} of shape [{string.Join(", ", p.Layout.Shape)}]");
            using var scope = NewDisposeScope();
            var host = empty(p.Layout.Shape, dtype: ScalarType.Float32);
            entry.Data.Span.CopyTo(host.bytes);
            p.CopyFrom(host);
        }
        return (spec, model);
    }
}
