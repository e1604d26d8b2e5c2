namespace Elastic.Parallelism.Pipeline;

/// <summary>
/// One model chunk of a pipeline: transformer layers [<see cref="First"/>, <see cref="First"/> + <see cref="Count"/>),
/// the token embedding when it is the first chunk, the final LayerNorm and head when it is the last, and its cost.
/// </summary>
public sealed record ModelChunk(int Index, int First, int Count, bool Embedding, bool Head, double Cost)
{
    public override string ToString() =>
        $"{(Embedding ? "embedding + " : "")}{(Count == 1 ? $"layer {First}" : $"layers {First}-{First + Count - 1}")}{(Head ? " + head" : "")}";
}

/// <summary>
/// Splits a model's layers into contiguous chunks (pp stages, or pp x v virtual stages for an interleaved schedule) so
/// that the costliest chunk costs as little as possible, the embedding counted on the first chunk and the head on the
/// last. Exact (dynamic programming over boundaries) and deterministic: among equally good splits, the earliest
/// boundaries win.
/// </summary>
public static class StageSplit
{
    /// <param name="layerCosts">The cost of each transformer layer, in order.</param>
    /// <param name="embedding">What the first chunk pays besides its layers.</param>
    /// <param name="head">What the last chunk pays besides its layers (final LayerNorm, head, loss).</param>
    /// <param name="chunks">How many chunks; each gets at least one layer.</param>
    public static IReadOnlyList<ModelChunk> Balance(IReadOnlyList<double> layerCosts, double embedding, double head, int chunks)
    {
        var layers = layerCosts.Count;
        if (chunks < 1) throw new ArgumentOutOfRangeException(nameof(chunks), chunks, "a pipeline needs at least one chunk");
        if (chunks > layers)
            throw new ArgumentException($"{chunks} pipeline chunk(s) need at least one layer each, but the model has {layers}", nameof(chunks));
        var prefix = new double[layers + 1];
        for (var i = 0; i < layers; i++) prefix[i + 1] = prefix[i] + layerCosts[i];
        double Cost(int first, int end) => prefix[end] - prefix[first] + (first == 0 ? embedding : 0) + (end == layers ? head : 0);

        // best[k, end]: the smallest largest-chunk cost of layers [0, end) in k chunks; from[k, end]: where its last chunk starts.
        var best = new double[chunks + 1, layers + 1];
        var from = new int[chunks + 1, layers + 1];
        for (var end = 1; end <= layers; end++) best[1, end] = Cost(0, end);
        for (var k = 2; k <= chunks; k++)
            for (var end = k; end <= layers; end++)
            {
                best[k, end] = double.PositiveInfinity;
                for (var start = k - 1; start < end; start++)
                {
                    var worst = Math.Max(best[k - 1, start], Cost(start, end));
                    if (worst < best[k, end])
                        (best[k, end], from[k, end]) = (worst, start);
                }
            }
        var result = new ModelChunk[chunks];
        for (int k = chunks, end = layers; k >= 1; k--)
        {
            var start = k == 1 ? 0 : from[k, end];
            result[k - 1] = new ModelChunk(k - 1, start, end - start, start == 0, end == layers, Cost(start, end));
            end = start;
        }
        return result;
    }
}
