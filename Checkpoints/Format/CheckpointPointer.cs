using System.Text.Json;

namespace Elastic.Checkpoints.Format;

/// <summary>A committed checkpoint by step, generation and manifest; <c>latest</c> holds the newest one and moves forward by compare-and-swap only.</summary>
public sealed record CheckpointPointer(long Step, int Generation, string Manifest)
{
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, CheckpointManifest.Json);

    public static CheckpointPointer Parse(byte[] json, string name)
    {
        try
        {
            return JsonSerializer.Deserialize<CheckpointPointer>(json, CheckpointManifest.Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException($"{name} is not a valid latest pointer: {e.Message}", e);
        }
    }
}
