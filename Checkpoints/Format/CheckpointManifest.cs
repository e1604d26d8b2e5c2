using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Checkpoints.Format;

/// <summary>
/// A checkpoint exists only when its manifest exists: every chunk with its file, byte range and digests,
/// the job, step and generation that wrote it, the plan it was written under, and free-form metadata
/// (spec, schedule and data positions). Written last and create-only.
/// </summary>
public sealed record CheckpointManifest
{
    public const int CurrentFormatVersion = 1;

    public int FormatVersion { get; init; } = CurrentFormatVersion;
    public required string JobId { get; init; }
    public required long Step { get; init; }
    public required int Generation { get; init; }
    public required string Plan { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required IReadOnlyList<ChunkDescriptor> Chunks { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>Parses a manifest; anything malformed or of another format version is a <see cref="CheckpointCorruptException"/>.</summary>
    public static CheckpointManifest Parse(byte[] json, string name)
    {
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(json, Json);
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException($"manifest {name} is not valid: {e.Message}", e);
        }
        if (manifest is null) throw new CheckpointCorruptException($"manifest {name} is empty");
        if (manifest.FormatVersion != CurrentFormatVersion)
            throw new CheckpointCorruptException($"manifest {name} has format version {manifest.FormatVersion}; this reader knows {CurrentFormatVersion}");
        return manifest;
    }
}
