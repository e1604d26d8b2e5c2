using System.Text.Json;

namespace Elastic.Checkpoints.Format;

/// <summary>What <c>latest</c> points at: the newest committed checkpoint's manifest, moved forward by compare-and-swap only.</summary>
public sealed record LatestPointer(long Step, int Generation, string Manifest)
{
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, CheckpointManifest.Json);

    public static LatestPointer Parse(byte[] json, string name)
    {
        try
        {
            return JsonSerializer.Deserialize<LatestPointer>(json, CheckpointManifest.Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException($"{name} is not a valid latest pointer: {e.Message}", e);
        }
    }
}
