using Elastic.Training.Model;
using Elastic.Jobs;
using TorchSharp;

namespace Elastic.Cli;

/// <summary>The folder a local run leaves behind: its spec, its trained weights and its report.</summary>
public sealed class RunFolder(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
    public string SpecFile => System.IO.Path.Combine(Path, "spec.json");
    public string ModelFile => System.IO.Path.Combine(Path, "model.dat");
    public string ReportFile => System.IO.Path.Combine(Path, "report.json");

    public static RunFolder ForSpec(TrainingSpec spec) => new(System.IO.Path.Combine("runs", spec.Name));

    public void Save(TrainingSpec spec, GptModel model)
    {
        Directory.CreateDirectory(Path);
        File.WriteAllText(SpecFile, SpecJson.Serialize(spec));
        model.save(ModelFile);
    }

    /// <summary>Rebuilds the trained model; the caller owns (and disposes) it.</summary>
    public (TrainingSpec Spec, GptModel Model) Load()
    {
        if (!File.Exists(SpecFile) || !File.Exists(ModelFile))
            throw new CliException($"--run {Path}: no trained model there (expected spec.json and model.dat; `elastic train` writes them)");
        var spec = SpecJson.Parse(File.ReadAllText(SpecFile));
        var model = new GptModel(spec.Model, spec.Seed);
        model.load(ModelFile);
        return (spec, model);
    }
}
