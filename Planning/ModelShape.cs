using Elastic.Jobs;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Planning;

/// <summary>
/// The sizes of a decoder's parts (GPT-2 or Llama) that the cost model adds up: parameters of each layer and of the embedding and head, split
/// by tensor parallelism or replicated over it; the training FLOPs and kernels of a micro-batch through each part; the
/// activations autograd keeps. Counts of elements and operations, in one place for the memory and step-time models.
/// </summary>
public sealed class ModelShape
{
    private readonly ModelSpec _m;

    public ModelShape(ModelSpec model, int microBatch)
    {
        _m = model;
        MicroBatch = microBatch;
        long d = model.DModel, f = model.FfnSize, kv = model.KeyValueWidth;
        var llama = model.IsLlama;
        // GPT-2: weights and biases of QKV and the output projection. Llama: no biases; keys and values split with the heads when S divides them.
        var keyValues = 2 * d * kv;
        var kvSplit = !llama || model.KeyValueSplit(model.Shards);
        // Split by tp: the query, key/value (when split) and output projections, GPT-2's QKV bias; replicated: the rest.
        SplitAttention = llama ? 2 * d * d + (kvSplit ? keyValues : 0) : 3 * d * d + 3 * d + d * d;
        ReplicatedAttention = llama ? (kvSplit ? 0 : keyValues) : d;
        Mlp = llama ? 3 * d * f : d * f + f + (f * d + d);
        // Split by tp: the projections' weights (and GPT-2's QKV and first MLP biases).
        SplitDense = llama ? 2 * d * d + (kvSplit ? keyValues : 0) + 3 * d * f : 3 * d * d + 3 * d + d * d + d * f + f + f * d;
        // Replicated: the norms (GPT-2's with biases), GPT-2's output and second MLP biases, Llama's key/value projection when S does not divide its heads.
        ReplicatedDense = llama ? 2 * d + (kvSplit ? 0 : keyValues) : 2 * d + 2 * d + d + d;
        NormParameters = llama ? d : 2 * d;
    }

    /// <summary>Parameters of one layer's attention that tensor parallelism splits.</summary>
    public long SplitAttention { get; }

    /// <summary>Parameters of one layer's attention every tensor rank holds (GPT-2's output bias, Llama's unsplit key/value projection).</summary>
    public long ReplicatedAttention { get; }

    /// <summary>Parameters of one normalisation (gain, and GPT-2's bias).</summary>
    public long NormParameters { get; }

    public int MicroBatch { get; }

    /// <summary>Parameters of one expert (an MLP of the dense layers' shape).</summary>
    public long Mlp { get; }

    public long SplitDense { get; }
    public long ReplicatedDense { get; }

    /// <summary>Tokens in one micro-batch.</summary>
    public long Tokens => (long)MicroBatch * _m.Context;

    public bool IsMoe(int layer) => _m.Moe is { } moe && moe.IsMoeLayer(layer);

    /// <summary>
    /// Parameters of layer <paramref name="layer"/> one tensor rank of <paramref name="tp"/> holds when its replica hosts
    /// <paramref name="hostedExperts"/> experts of each MoE layer (experts are not split by tp; the router is replicated).
    /// </summary>
    public long LayerParameters(int layer, int tp, int hostedExperts)
    {
        if (!IsMoe(layer)) return SplitDense / tp + ReplicatedDense;
        // Attention as in a dense layer, both norms, the hosted experts (not split by tp) and the replicated router.
        return SplitAttention / tp + ReplicatedAttention + 2 * NormParameters + (long)hostedExperts * Mlp + (long)_m.Moe!.Experts * _m.DModel;
    }

    /// <summary>Parameters of the embedding (token embedding split over the vocabulary; GPT-2's positions replicated, Llama has none).</summary>
    public long EmbeddingParameters(int tp) => (long)_m.Vocab * _m.DModel / tp + (_m.IsLlama ? 0 : (long)_m.Context * _m.DModel);

    /// <summary>Parameters of the head: the final norm and, untied or on a stage without the embedding, the output projection.</summary>
    public long HeadParameters(int tp, bool withEmbedding) =>
        NormParameters + (!_m.TiedEmbeddings || !withEmbedding ? (long)_m.Vocab * _m.DModel / tp : 0);

    public long ChunkParameters(ModelChunk chunk, int tp, int hostedExperts) =>
        Enumerable.Range(chunk.First, chunk.Count).Sum(l => LayerParameters(l, tp, hostedExperts))
        + (chunk.Embedding ? EmbeddingParameters(tp) : 0) + (chunk.Head ? HeadParameters(tp, chunk.Embedding) : 0);

    /// <summary>The whole model's parameters (every expert).</summary>
    public long Parameters =>
        ChunkParameters(new ModelChunk(0, 0, _m.Layers, true, true, 0), 1, _m.Moe?.Experts ?? 0);

    /// <summary>
    /// Activation elements a layer keeps for backward per micro-batch, as plan-accuracy measures them (the native heap's peak over
    /// a step, each layer's temporaries released when it ends): a part split by tp only when the sequence is
    /// (<see cref="SequenceElements"/>), a part split by tp along heads or the MLP width (<see cref="TensorElements"/>), with the
    /// sequence split the whole-sequence inputs the column-parallel regions gather and keep (<see cref="GatheredElements"/>), and
    /// for a rank holding several virtual shards, what each shard beyond the first keeps of its own (<see cref="ShardCopies"/>).
    /// </summary>
    public long LayerActivationElements(int tp, bool sequenceSplit) =>
        SequenceElements / (sequenceSplit ? tp : 1) + TensorElements / tp + (sequenceSplit ? GatheredElements : 0)
        + ShardCopies * Math.Max(0, _m.Shards / tp - 1) * Tokens * _m.DModel;

    /// <summary>
    /// Per virtual shard beyond the first a rank holds, tokens x d elements a layer keeps per micro-batch in flight: each shard's
    /// copy of the input of QKV and of the MLP's first projection, whole along the sequence, and its share of the sums that join
    /// the shards; measured at about 5 (plan-accuracy at S = 1 and 8, GPT-2 and Llama, and in 1F1B pipelines, where it grows
    /// with the micro-batches in flight).
    /// </summary>
    private const long ShardCopies = 5;

    /// <summary>
    /// What a layer keeps that tensor parallelism splits only along the sequence: the block input, the norms' outputs, the
    /// residual and the dropout masks; fitted to plan-accuracy's measurements at tp 1 and 4 (8 x d per token for GPT-2, 6 for Llama).
    /// </summary>
    public long SequenceElements => Tokens * (_m.IsLlama ? 6 : 8) * _m.DModel;

    /// <summary>
    /// What a layer keeps that tensor parallelism splits along heads or the MLP width, fitted to the same measurements: GPT-2 about
    /// d/2 + ffn per token (its tanh GELU's input; q/k/v and the attention output are views the fused kernel keeps), Llama about
    /// 2d + 3 x its key/value width + 4 x ffn (SwiGLU's gate, up, activation and product; the rotated queries and keys, grouped keys
    /// and values expanded to every query head), plus what the fused attention kernel keeps.
    /// </summary>
    public long TensorElements => _m.IsLlama
        ? Tokens * (2L * _m.DModel + 3L * _m.KeyValueWidth + 4L * _m.FfnSize) + AttentionKept
        : Tokens * (_m.DModel / 2 + (long)_m.FfnSize) + AttentionKept;

    /// <summary>
    /// With the sequence split over tp ranks, the whole-sequence inputs a layer's column-parallel regions gather and keep: about
    /// 4 x d per token (plan-accuracy at tp 2 and 4 with 4 and 8 layers).
    /// </summary>
    public long GatheredElements => Tokens * 4L * _m.DModel;

    /// <summary>Attention weights of one micro-batch through one layer (b x h x t x t): what the attention core computes and reads.</summary>
    public long AttentionWeights => (long)MicroBatch * _m.Heads * _m.Context * _m.Context;

    /// <summary>
    /// What the fused attention kernel (scaled_dot_product_attention, on CPU and CUDA) keeps of the core for backward beyond q/k/v and
    /// its output: one log-sum-exp per head and position, not the t x t weights. What selective recomputation drops.
    /// </summary>
    public long AttentionKept => (long)MicroBatch * _m.Heads * _m.Context;

    /// <summary>The embedding's activations (token and position lookups, their sum, its dropout), per micro-batch.</summary>
    public long EmbeddingActivationElements => 4 * Tokens * _m.DModel;

    /// <summary>The head's logits, their softmax and gradient (split over the vocabulary by tp), per micro-batch.</summary>
    public long HeadActivationElements(int tp) => 3 * Tokens * _m.Vocab / tp;

    /// <summary>
    /// Forward matmul FLOPs of layer <paramref name="layer"/> per micro-batch, whole (not divided by tp): QKV and output
    /// projections, attention scores and values (unfused: the whole t x t), and the MLP or, on a MoE layer, the router and top-k experts.
    /// </summary>
    public double LayerForwardFlops(int layer)
    {
        double n = Tokens, d = _m.DModel, f = _m.FfnSize, t = _m.Context, kv = _m.KeyValueWidth;
        var attention = 2 * n * (2 * d * d + 2 * d * kv) + 4 * n * t * d;
        return _m.Moe is { } moe && IsMoe(layer)
            ? attention + 2 * n * d * moe.Experts + moe.TopK * 2 * n * _m.MlpMatrices * d * f
            : attention + 2 * n * _m.MlpMatrices * d * f;
    }

    /// <summary>The attention core's forward FLOPs per micro-batch (scores and values): what selective recomputation runs again.</summary>
    public double AttentionCoreFlops => 4.0 * Tokens * _m.Context * _m.DModel;

    /// <summary>The head's forward matmul FLOPs per micro-batch (to the vocabulary), whole.</summary>
    public double HeadForwardFlops => 2.0 * Tokens * _m.DModel * _m.Vocab;

    /// <summary>
    /// Elements a layer's elementwise kernels read and write in forward per micro-batch (LayerNorms, residuals, dropout,
    /// softmax, GELU): the sequence-wise part split only with the sequence, the rest by tp.
    /// </summary>
    public double LayerElementwise(int tp, bool sequenceSplit) =>
        8.0 * Tokens * _m.DModel / (sequenceSplit ? tp : 1) + (12.0 * Tokens * _m.DModel + 4.0 * Tokens * _m.FfnSize + 3.0 * AttentionWeights) / tp;

    /// <summary>
    /// Kernels one tensor rank launches for a layer's forward: each of its S / tp virtual shards runs the QKV, score, value,
    /// output and two MLP matmuls apart (the price of layout-independent bits), plus the elementwise kernels.
    /// </summary>
    public int LayerForwardKernels(int tp) => 6 * Math.Max(1, _m.Shards / tp) + 14;

    /// <summary>
    /// Of those, the kernels of a rank's virtual shards beyond its first: each a smaller matmul (or its copy) than one whole one,
    /// which costs more than its share of the arithmetic (<see cref="Hardware.DeviceProfile.ShardKernelMicroseconds"/>).
    /// </summary>
    public int LayerExtraShardKernels(int tp) => 6 * Math.Max(0, _m.Shards / tp - 1);

    /// <summary>Parameter tensors of one layer (what the optimizer's per-tensor kernels run over).</summary>
    public int LayerTensors => _m.IsLlama ? 7 : 12;
}
