using System.Runtime.InteropServices;
using Elastic.Checkpoints.Format;
using Elastic.Jobs;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// The one place Elastic's parameters meet Hugging Face's: for each of a model's parameters, the tensors the ecosystem's
/// <c>GPT2LMHeadModel</c>, <c>LlamaForCausalLM</c> or <c>MixtralForCausalLM</c> holds for it. Elastic keeps linear weights as torch.nn.Linear does,
/// [out, in], and stacks what tensor shards split together (GPT-2's q, k and v; Llama's k and v, gate and up); GPT-2's
/// Conv1D weights are [in, out], and Llama names each projection apart. Both directions move float32 bytes exactly, so an
/// import followed by an export gives back the imported tensors.
/// </summary>
public static class HfTensorMap
{
    /// <summary>One Hugging Face tensor of a parameter: slice <paramref name="Slice"/> of its dimension 0 (null: all), transposed or not.</summary>
    public sealed record Part(string Name, long[] Shape, int? Slice, bool Transposed);

    /// <summary>A parameter of the model and the Hugging Face tensors it is made of.</summary>
    public sealed record Rule(string Elastic, long[] Shape, IReadOnlyList<Part> Parts);

    /// <summary>
    /// Whether <paramref name="m"/> has a Hugging Face form: dense models do, and a Llama whose every layer is a dropless MoE
    /// layer gating at least two experts is Mixtral (softmax over the router's logits, the top k renormalised). Other MoE
    /// models (GPT-2's, interleaved, capacity-limited, or a single expert gated by its probability) keep Elastic's names.
    /// </summary>
    public static bool HasForm(ModelSpec m) => m.Moe is null || (m.IsLlama && m.Moe is { Every: 1, CapacityFactor: null, TopK: >= 2 });

    /// <summary>Every parameter of <paramref name="m"/> with its Hugging Face tensors (a model that <see cref="HasForm"/>).</summary>
    public static IReadOnlyList<Rule> For(ModelSpec m)
    {
        if (!HasForm(m)) throw new NotSupportedException("this mixture-of-experts model has no Hugging Face form; it is written in Elastic's names");
        return m.IsLlama ? Llama(m) : Gpt2(m);
    }

    private static List<Rule> Gpt2(ModelSpec m)
    {
        long d = m.DModel, f = m.FfnSize, v = m.Vocab;
        const string t = "transformer.";
        var rules = new List<Rule>
        {
            Same("wte.weight", t + "wte.weight", v, d),
            Same("wpe.weight", t + "wpe.weight", m.Context, d),
            Same("ln_f.weight", t + "ln_f.weight", d),
            Same("ln_f.bias", t + "ln_f.bias", d),
        };
        if (!m.TiedEmbeddings) rules.Add(Same("lm_head.weight", "lm_head.weight", v, d));
        for (var i = 0; i < m.Layers; i++)
        {
            var (h, hf) = ($"h.{i}.", $"{t}h.{i}.");
            rules.AddRange(
            [
                Same(h + "ln_1.weight", hf + "ln_1.weight", d),
                Same(h + "ln_1.bias", hf + "ln_1.bias", d),
                new(h + "attn.c_attn.weight", [3, d, d], [new(hf + "attn.c_attn.weight", [d, 3 * d], null, true)]),
                new(h + "attn.c_attn.bias", [3, d], [new(hf + "attn.c_attn.bias", [3 * d], null, false)]),
                Conv1D(h + "attn.c_proj.weight", hf + "attn.c_proj.weight", d, d),
                Same(h + "attn.c_proj.bias", hf + "attn.c_proj.bias", d),
                Same(h + "ln_2.weight", hf + "ln_2.weight", d),
                Same(h + "ln_2.bias", hf + "ln_2.bias", d),
                Conv1D(h + "mlp.c_fc.weight", hf + "mlp.c_fc.weight", f, d),
                Same(h + "mlp.c_fc.bias", hf + "mlp.c_fc.bias", f),
                Conv1D(h + "mlp.c_proj.weight", hf + "mlp.c_proj.weight", d, f),
                Same(h + "mlp.c_proj.bias", hf + "mlp.c_proj.bias", d),
            ]);
        }
        return rules;
    }

    private static List<Rule> Llama(ModelSpec m)
    {
        long d = m.DModel, f = m.FfnSize, v = m.Vocab, kv = m.KeyValueWidth;
        var rules = new List<Rule>
        {
            Same("wte.weight", "model.embed_tokens.weight", v, d),
            Same("ln_f.weight", "model.norm.weight", d),
        };
        if (!m.TiedEmbeddings) rules.Add(Same("lm_head.weight", "lm_head.weight", v, d));
        for (var i = 0; i < m.Layers; i++)
        {
            var (h, hf) = ($"h.{i}.", $"model.layers.{i}.");
            rules.AddRange(
            [
                Same(h + "ln_1.weight", hf + "input_layernorm.weight", d),
                Same(h + "attn.q_proj.weight", hf + "self_attn.q_proj.weight", d, d),
                new(h + "attn.kv_proj.weight", [2, kv, d], [new(hf + "self_attn.k_proj.weight", [kv, d], 0, false), new(hf + "self_attn.v_proj.weight", [kv, d], 1, false)]),
                Same(h + "attn.c_proj.weight", hf + "self_attn.o_proj.weight", d, d),
                Same(h + "ln_2.weight", hf + "post_attention_layernorm.weight", d),
            ]);
            rules.AddRange(m.Moe is { Experts: var e } ? MixtralExperts(h, hf + "block_sparse_moe.", e, d, f) :
            [
                new(h + "mlp.gate_up.weight", [2, f, d], [new(hf + "mlp.gate_proj.weight", [f, d], 0, false), new(hf + "mlp.up_proj.weight", [f, d], 1, false)]),
                Same(h + "mlp.c_proj.weight", hf + "mlp.down_proj.weight", d, f),
            ]);
        }
        return rules;
    }

    /// <summary>A Mixtral layer's router and experts: Elastic stacks the experts (gate and up together); Mixtral names each w1 (gate), w3 (up), w2 (down).</summary>
    private static Rule[] MixtralExperts(string h, string moe, int experts, long d, long f) =>
    [
        Same(h + "mlp.router.weight", moe + "gate.weight", experts, d),
        new(h + "mlp.experts.gate_up.weight", [experts, 2, f, d],
            Enumerable.Range(0, experts).SelectMany(e => new[] { new Part($"{moe}experts.{e}.w1.weight", [f, d], 2 * e, false), new Part($"{moe}experts.{e}.w3.weight", [f, d], 2 * e + 1, false) }).ToList()),
        new(h + "mlp.experts.c_proj.weight", [experts, d, f], Enumerable.Range(0, experts).Select(e => new Part($"{moe}experts.{e}.w2.weight", [d, f], e, false)).ToList()),
    ];

    private static Rule Same(string elastic, string hf, params long[] shape) => new(elastic, shape, [new(hf, shape, null, false)]);

    /// <summary>A GPT-2 Conv1D weight: Elastic's [out, in] is Hugging Face's [in, out].</summary>
    private static Rule Conv1D(string elastic, string hf, long outFeatures, long inFeatures) =>
        new(elastic, [outFeatures, inFeatures], [new(hf, [inFeatures, outFeatures], null, true)]);

    /// <summary>A parameter's Hugging Face tensors from its float32 bytes (Elastic's shape).</summary>
    public static IEnumerable<Safetensors.Entry> Export(Rule rule, ReadOnlyMemory<byte> bytes)
    {
        var count = rule.Parts.Count(p => p.Slice is not null);
        foreach (var part in rule.Parts)
        {
            var piece = part.Slice is { } slice ? bytes.Slice(slice * bytes.Length / count, bytes.Length / count) : bytes;
            yield return new Safetensors.Entry(part.Name, "F32", part.Shape, part.Transposed ? Transpose(piece.Span, part.Shape[1], part.Shape[0]) : piece);
        }
    }

    /// <summary>
    /// A parameter's float32 bytes (Elastic's shape) from its Hugging Face tensors, each already float32 and of its part's shape;
    /// null when a part is missing.
    /// </summary>
    public static byte[]? Import(Rule rule, Func<string, ReadOnlyMemory<byte>?> tensor)
    {
        var pieces = new List<ReadOnlyMemory<byte>>();
        foreach (var part in rule.Parts)
        {
            if (tensor(part.Name) is not { } data) return null;
            pieces.Add(part.Transposed ? Transpose(data.Span, part.Shape[0], part.Shape[1]) : data);
        }
        var whole = new byte[pieces.Sum(p => p.Length)];
        var at = 0;
        foreach (var piece in pieces)
        {
            piece.Span.CopyTo(whole.AsSpan(at));
            at += piece.Length;
        }
        return whole;
    }

    /// <summary>A [rows, columns] float32 matrix's bytes as [columns, rows].</summary>
    private static byte[] Transpose(ReadOnlySpan<byte> bytes, long rows, long columns)
    {
        var source = MemoryMarshal.Cast<byte, float>(bytes);
        var result = new byte[bytes.Length];
        var target = MemoryMarshal.Cast<byte, float>(result.AsSpan());
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < columns; c++)
                target[(int)(c * rows + r)] = source[(int)(r * columns + c)];
        return result;
    }
}
