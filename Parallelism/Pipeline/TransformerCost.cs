namespace Elastic.Parallelism.Pipeline;

/// <summary>
/// Training FLOPs (forward and backward, about three times the forward's matmul FLOPs) of the parts of a decoder, per
/// sequence: what <see cref="StageSplit"/> balances. Only ratios matter.
/// </summary>
public static class TransformerCost
{
    /// <summary>
    /// One block: query, key/value (<paramref name="keyValueWidth"/> each; d without grouped-query attention) and output
    /// projections, the MLP (<paramref name="mlpMatrices"/> d x ffn matrices: 2 for GELU, 3 for SwiGLU), attention scores and
    /// values (2 s d), per token.
    /// </summary>
    public static double Layer(int dModel, int ffn, int context, int keyValueWidth, int mlpMatrices) =>
        3.0 * 2 * context * (2.0 * dModel * dModel + 2.0 * dModel * keyValueWidth + mlpMatrices * (double)dModel * ffn + 2.0 * context * dModel);

    /// <summary>The token and position embeddings: a lookup and, backward, a scatter-add of d values per token.</summary>
    public static double Embedding(int dModel, int context) => 3.0 * context * dModel;

    /// <summary>The final LayerNorm, the head's matmul to the vocabulary and the loss.</summary>
    public static double Head(int dModel, int vocab, int context) => 3.0 * 2 * context * ((double)dModel * vocab + vocab);
}
