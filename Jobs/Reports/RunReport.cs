using System.Text.Json;

namespace Elastic.Jobs.Reports;

/// <summary>Everything a run did, written as JSON: enough to compare two runs bit for bit and to plot them.</summary>
public sealed record RunReport
{
    public required TrainingSpec Spec { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required string Device { get; init; }
    public required int ThreadsPerDevice { get; init; }
    public required long Parameters { get; init; }
    public required IReadOnlyList<StepRecord> Steps { get; init; }
    public required IReadOnlyList<EvalRecord> HeldOut { get; init; }
    /// <summary>False when the run was cancelled before its last step.</summary>
    public required bool Completed { get; init; }
    public required double WallSeconds { get; init; }
    /// <summary>Training tokens per second over the whole run (evaluation excluded).</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>SHA-256 over all parameters in name order (little-endian bytes).</summary>
    public required string FinalParameterDigest { get; init; }
    /// <summary>What the busiest device held at the end, by kind (null for reports written before it was recorded).</summary>
    public DeviceMemory? Memory { get; init; }

    public void WriteTo(string path)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        File.WriteAllText(path, JsonSerializer.Serialize(this, SpecJson.Options));
    }

    public static RunReport Read(string path) =>
        JsonSerializer.Deserialize<RunReport>(File.ReadAllText(path), SpecJson.Options)
        ?? throw new InvalidDataException($"{path} is not a run report");
}

/// <summary>One optimizer step as the report records it (with MoE layers, what the experts did).</summary>
public sealed record StepRecord(long Step, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, double Milliseconds, ExpertLoad? Experts = null);

/// <summary>A held-out evaluation after step <see cref="Step"/>.</summary>
public sealed record EvalRecord(long Step, double Loss);
