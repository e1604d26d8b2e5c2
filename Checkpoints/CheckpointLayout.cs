namespace Elastic.Checkpoints;

/// <summary>Where a job's checkpoints live in a store: one folder per (step, generation), and one <c>latest</c> pointer.</summary>
public sealed record CheckpointLayout(string Root)
{
    public string Latest => $"{Root}/latest.json";

    public string Folder(long step, int generation) => $"{Root}/step-{step:D8}-g{generation}";

    public string Manifest(long step, int generation) => $"{Folder(step, generation)}/manifest.json";

    public string ChunkFile(long step, int generation, string writer) => $"{Folder(step, generation)}/chunks-{writer}.safetensors";

    /// <summary>One writer's chunk entries, merged into the manifest by the committer.</summary>
    public string Part(long step, int generation, string writer) => $"{Folder(step, generation)}/part-{writer}.json";

    /// <summary>Where a job's checkpoints live.</summary>
    public static CheckpointLayout ForJob(string jobId) => new($"jobs/{jobId}");
}
