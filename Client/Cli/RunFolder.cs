using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Cli;

/// <summary>The folder a run leaves behind: the trained model (see <see cref="ModelFolder"/>) and the report.</summary>
public sealed class RunFolder(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
    public string ReportFile => System.IO.Path.Combine(Path, "report.json");
    /// <summary>Checkpoints of an interrupted run (and, with --devices, the in-process cluster's job state).</summary>
    public string Checkpoints => System.IO.Path.Combine(Path, "checkpoints");
    /// <summary>The id of the job an in-process cluster ran for this folder, to resume it.</summary>
    public string JobIdFile => System.IO.Path.Combine(Path, "job-id");

    public static RunFolder ForSpec(TrainingSpec spec) => new(System.IO.Path.Combine("runs", spec.Name));

    public void Save(TrainingSpec spec, Trainer trainer) => ModelFolder.Save(Path, spec, trainer);

    /// <summary>Rebuilds the trained model; the caller owns (and disposes) it.</summary>
    public (TrainingSpec Spec, DecoderModel Model) Load() =>
        ModelFolder.Exists(Path)
            ? ModelFolder.Load(Path)
            : throw new CliException($"--run {Path}: no trained model there (expected config.json and {ModelFolder.WeightsFile}; `elastic train` writes them)");
}
