using Elastic.Jobs;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Planning;

/// <summary>How a model's layers are cut into pipeline chunks: balanced by training FLOPs (<see cref="StageSplit"/>, <see cref="TransformerCost"/>).</summary>
public static class PipelineSplit
{
    /// <summary>The layers of <paramref name="m"/> in <paramref name="chunks"/> chunks (pp stages, or pp x v virtual stages).</summary>
    public static IReadOnlyList<ModelChunk> Chunks(ModelSpec m, int chunks) =>
        StageSplit.Balance(Enumerable.Repeat(TransformerCost.Layer(m.DModel, m.FfnSize, m.Context, m.KeyValueWidth, m.MlpMatrices), m.Layers).ToList(),
            TransformerCost.Embedding(m.DModel, m.Context), TransformerCost.Head(m.DModel, m.Vocab, m.Context), chunks);

    /// <summary>What each stage holds, e.g. <c>stage 0: embedding + layers 0-1; stage 1: layers 2-3 + head</c> (chunk c on stage c mod pp).</summary>
    public static string Describe(ModelSpec m, int stages, int virtualStages)
    {
        var chunks = Chunks(m, stages * virtualStages);
        return string.Join("; ", Enumerable.Range(0, stages).Select(s =>
            $"stage {s}: {string.Join(", ", chunks.Where(c => c.Index % stages == s))}"));
    }
}
