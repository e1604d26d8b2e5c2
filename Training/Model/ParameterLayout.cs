namespace Elastic.Training.Model;

/// <summary>How the model initialises a parameter.</summary>
public enum ParameterInit
{
    Zeros,
    Ones,
    /// <summary>normal(0, 0.02).</summary>
    Normal,
    /// <summary>normal(0, 0.02 / sqrt(2 x layers)): the projections into the residual stream (GPT-2).</summary>
    ResidualNormal,
}

/// <summary>
/// A logical parameter of the model: its name (GPT-2's scheme for both architectures; Hugging Face names are mapped at
/// import and export), whole shape, the dimension its pieces split (null: replicated on every
/// rank), whether weight decay applies, and its initialisation. A parameter is split either into the S virtual tensor
/// shards (held by tensor rank) or, <see cref="Experts"/>, along dimension 0 into one piece per expert (held by expert
/// rank, replicated over the tensor group).
/// </summary>
public sealed record ParameterLayout(string Name, long[] Shape, int? SplitDim, bool Decay, ParameterInit Init, bool Experts = false)
{
    /// <summary>Split into the S virtual tensor shards, each held by one tensor rank.</summary>
    public bool TensorSplit => SplitDim is not null && !Experts;

    /// <summary>The pieces the whole tensor is cut into: S tensor shards, E experts, or 1.</summary>
    public int Pieces(int tensorShards) => Experts ? (int)Shape[0] : SplitDim is null ? 1 : tensorShards;

    /// <summary>Every parameter of a model of <paramref name="m"/>, in name order (ordinal): the canonical order for flat buffers, digests and checkpoints.</summary>
    public static IReadOnlyList<ParameterLayout> Of(Elastic.Jobs.ModelSpec m) =>
        (m.IsLlama ? Llama(m) : Gpt2(m)).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();

    private static List<ParameterLayout> Gpt2(Elastic.Jobs.ModelSpec m)
    {
        long d = m.DModel, f = m.FfnSize, v = m.Vocab;
        var all = new List<ParameterLayout>
        {
            new("wte.weight", [v, d], 0, true, ParameterInit.Normal),
            new("wpe.weight", [m.Context, d], null, true, ParameterInit.Normal),
            new("ln_f.weight", [d], null, false, ParameterInit.Ones),
            new("ln_f.bias", [d], null, false, ParameterInit.Zeros),
        };
        if (!m.TiedEmbeddings) all.Add(new("lm_head.weight", [v, d], 0, true, ParameterInit.Normal));
        for (var i = 0; i < m.Layers; i++)
        {
            var h = $"h.{i}.";
            all.AddRange(
            [
                new(h + "ln_1.weight", [d], null, false, ParameterInit.Ones),
                new(h + "ln_1.bias", [d], null, false, ParameterInit.Zeros),
                // [3, d, d]: q, k and v stacked (the bytes of GPT-2's [3d, d]); shards split the heads of all three.
                new(h + "attn.c_attn.weight", [3, d, d], 1, true, ParameterInit.Normal),
                new(h + "attn.c_attn.bias", [3, d], 1, false, ParameterInit.Zeros),
                new(h + "attn.c_proj.weight", [d, d], 1, true, ParameterInit.ResidualNormal),
                new(h + "attn.c_proj.bias", [d], null, false, ParameterInit.Zeros),
                new(h + "ln_2.weight", [d], null, false, ParameterInit.Ones),
                new(h + "ln_2.bias", [d], null, false, ParameterInit.Zeros),
            ]);
            all.AddRange(m.Moe is { } moe && moe.IsMoeLayer(i) ? MoeLayer(h, moe.Experts, d, f) :
            [
                new(h + "mlp.c_fc.weight", [f, d], 0, true, ParameterInit.Normal),
                new(h + "mlp.c_fc.bias", [f], 0, false, ParameterInit.Zeros),
                new(h + "mlp.c_proj.weight", [d, f], 1, true, ParameterInit.ResidualNormal),
                new(h + "mlp.c_proj.bias", [d], null, false, ParameterInit.Zeros),
            ]);
        }
        return all;
    }

    /// <summary>
    /// Llama: RMSNorm gains only, no biases, no position table. The query projection splits its heads over the shards; the
    /// key/value projection ([2, kvHeads x headDim, d]: k and v stacked) splits its heads too when S divides them, and is
    /// otherwise replicated (each shard computes the one head its queries read). The MLP's gate and up projections are
    /// stacked ([2, ffn, d]) and split along the width.
    /// </summary>
    private static List<ParameterLayout> Llama(Elastic.Jobs.ModelSpec m)
    {
        long d = m.DModel, f = m.FfnSize, v = m.Vocab, kv = (long)m.KeyValueHeads * m.HeadDim;
        var all = new List<ParameterLayout>
        {
            new("wte.weight", [v, d], 0, true, ParameterInit.Normal),
            new("ln_f.weight", [d], null, false, ParameterInit.Ones),
        };
        if (!m.TiedEmbeddings) all.Add(new("lm_head.weight", [v, d], 0, true, ParameterInit.Normal));
        for (var i = 0; i < m.Layers; i++)
        {
            var h = $"h.{i}.";
            all.AddRange(
            [
                new(h + "ln_1.weight", [d], null, false, ParameterInit.Ones),
                new(h + "attn.q_proj.weight", [d, d], 0, true, ParameterInit.Normal),
                new(h + "attn.kv_proj.weight", [2, kv, d], m.KeyValueSplit(m.Shards) ? 1 : null, true, ParameterInit.Normal),
                new(h + "attn.c_proj.weight", [d, d], 1, true, ParameterInit.ResidualNormal),
                new(h + "ln_2.weight", [d], null, false, ParameterInit.Ones),
            ]);
            all.AddRange(m.Moe is { } moe && moe.IsMoeLayer(i) ? SwiGluExperts(h, moe.Experts, d, f) :
            [
                new(h + "mlp.gate_up.weight", [2, f, d], 1, true, ParameterInit.Normal),
                new(h + "mlp.c_proj.weight", [d, f], 1, true, ParameterInit.ResidualNormal),
            ]);
        }
        return all;
    }

    /// <summary>A Llama MoE layer (Mixtral's): the router ([E, d], replicated) and E SwiGLU experts without biases, stacked along dimension 0.</summary>
    private static ParameterLayout[] SwiGluExperts(string h, long e, long d, long f) =>
    [
        new(h + "mlp.router.weight", [e, d], null, true, ParameterInit.Normal),
        new(h + "mlp.experts.gate_up.weight", [e, 2, f, d], 0, true, ParameterInit.Normal, Experts: true),
        new(h + "mlp.experts.c_proj.weight", [e, d, f], 0, true, ParameterInit.ResidualNormal, Experts: true),
    ];

    /// <summary>A MoE layer's router ([E, d], replicated) and its E experts, each the dense MLP's shape, stacked along dimension 0.</summary>
    private static ParameterLayout[] MoeLayer(string h, long e, long d, long f) =>
    [
        new(h + "mlp.router.weight", [e, d], null, true, ParameterInit.Normal),
        new(h + "mlp.experts.c_fc.weight", [e, f, d], 0, true, ParameterInit.Normal, Experts: true),
        new(h + "mlp.experts.c_fc.bias", [e, f], 0, false, ParameterInit.Zeros, Experts: true),
        new(h + "mlp.experts.c_proj.weight", [e, d, f], 0, true, ParameterInit.ResidualNormal, Experts: true),
        new(h + "mlp.experts.c_proj.bias", [e, d], 0, false, ParameterInit.Zeros, Experts: true),
    ];
}
