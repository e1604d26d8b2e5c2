using Elastic.Parallelism.Pipeline;

namespace Elastic.Training.Model;

/// <summary>
/// Which parameters a pipeline chunk holds: its layers' blocks, the token and position embeddings on the first chunk,
/// the final LayerNorm and head on the last. Tied embeddings put the token embedding on both ends; the first chunk
/// owns it (counts it in the gradient norm, writes it in checkpoints), the last holds a copy for its head.
/// </summary>
public static class ChunkParameters
{
    public static bool Holds(ModelChunk chunk, string name, bool tiedEmbeddings) =>
        Owns(chunk, name) || (tiedEmbeddings && chunk.Head && name == "wte.weight");

    public static bool Owns(ModelChunk chunk, string name)
    {
        if (name is "wte.weight" or "wpe.weight") return chunk.Embedding;
        if (name.StartsWith("ln_f.", StringComparison.Ordinal) || name == "lm_head.weight") return chunk.Head;
        if (!name.StartsWith("h.", StringComparison.Ordinal)) throw new ArgumentException($"'{name}' is not a GPT parameter", nameof(name));
        var layer = int.Parse(name.AsSpan(2, name.IndexOf('.', 2) - 2), System.Globalization.CultureInfo.InvariantCulture);
        return layer >= chunk.First && layer < chunk.First + chunk.Count;
    }
}
