using System.Globalization;
using System.Text.RegularExpressions;

namespace Elastic.Checkpoints;

/// <summary>Where a job's checkpoints live in a store: one folder per (step, generation), and one <c>latest</c> pointer.</summary>
public sealed partial record CheckpointLayout(string Root)
{
    public string Latest => $"{Root}/latest.json";

    public string Folder(long step, int generation) => $"{Root}/step-{step:D8}-g{generation}";

    public string Manifest(long step, int generation) => $"{Folder(step, generation)}/manifest.json";

    public string ChunkFile(long step, int generation, string writer) => $"{Folder(step, generation)}/chunks-{writer}.safetensors";

    /// <summary>
    /// Present when a restore found the checkpoint's data damaged: the checkpoint is no longer committed (never chosen again, not
    /// counted among those retention keeps) and goes with the orphans once <c>latest</c> has moved past it.
    /// </summary>
    public string DamagedMarker(long step, int generation) => $"{Folder(step, generation)}/damaged.txt";

    /// <summary>One writer's chunk entries, merged into the manifest by the committer.</summary>
    public string Part(long step, int generation, string writer) => $"{Folder(step, generation)}/part-{writer}.json";

    /// <summary>Where a job's checkpoints live.</summary>
    public static CheckpointLayout ForJob(string jobId) => new($"jobs/{jobId}");

    /// <summary>The (step, generation) whose folder holds <paramref name="blob"/>, or null for blobs outside any checkpoint folder.</summary>
    public (long Step, int Generation)? CheckpointOf(string blob)
    {
        if (!blob.StartsWith(Root + "/", StringComparison.Ordinal)) return null;
        var match = FolderName().Match(blob[(Root.Length + 1)..]);
        return match.Success
            ? (long.Parse(match.Groups["step"].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups["generation"].Value, CultureInfo.InvariantCulture))
            : null;
    }

    [GeneratedRegex(@"^step-(?<step>\d+)-g(?<generation>\d+)/")]
    private static partial Regex FolderName();
}
