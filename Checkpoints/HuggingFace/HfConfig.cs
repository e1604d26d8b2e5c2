using System.Globalization;
using System.Text.Json.Nodes;
using Elastic.Jobs;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// A model's <c>config.json</c> as Hugging Face transformers writes and reads it (GPT2Config, LlamaConfig, MixtralConfig):
/// written from a model spec, and read back into one, refusing what Elastic's architectures do not compute (another
/// activation, biases in Llama's projections, rope scaling, a sliding window) with the file and field named.
/// </summary>
public static class HfConfig
{
    public const string FileName = "config.json";

    /// <param name="dtype">The weights' <c>torch_dtype</c>.</param>
    public static JsonObject Write(ModelSpec m, string dtype = "float32")
    {
        if (m.Moe is { } moe && HfTensorMap.HasForm(m)) return Mixtral(m, moe, dtype);
        var config = m.IsLlama ? Llama(m, dtype) : Gpt2(m, dtype);
        if (m.Moe is { } experts) AddElasticExperts(config, experts, m);
        return config;
    }

    private static JsonObject Mixtral(ModelSpec m, MoeSpec moe, string dtype)
    {
        var config = Llama(m, dtype);
        config["architectures"] = new JsonArray("MixtralForCausalLM");
        config["model_type"] = "mixtral";
        foreach (var bias in new[] { "attention_bias", "mlp_bias", "rope_scaling" }) config.Remove(bias);
        config["sliding_window"] = null;
        config["num_local_experts"] = moe.Experts;
        config["num_experts_per_tok"] = moe.TopK;
        config["router_aux_loss_coef"] = moe.AuxLoss;
        config["output_router_logits"] = false;
        return config;
    }

    private static JsonObject Llama(ModelSpec m, string dtype) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = m.DModel,
        ["intermediate_size"] = m.FfnSize,
        ["num_hidden_layers"] = m.Layers,
        ["num_attention_heads"] = m.Heads,
        ["num_key_value_heads"] = m.KeyValueHeads,
        ["head_dim"] = m.HeadDim,
        ["max_position_embeddings"] = m.Context,
        ["vocab_size"] = m.Vocab,
        ["rms_norm_eps"] = m.NormEps,
        ["rope_theta"] = m.RopeTheta,
        ["rope_scaling"] = null,
        ["hidden_act"] = "silu",
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["attention_dropout"] = 0.0,
        ["tie_word_embeddings"] = m.TiedEmbeddings,
        ["torch_dtype"] = dtype,
    };

    private static JsonObject Gpt2(ModelSpec m, string dtype) => new()
    {
        ["architectures"] = new JsonArray("GPT2LMHeadModel"),
        ["model_type"] = "gpt2",
        ["n_layer"] = m.Layers,
        ["n_head"] = m.Heads,
        ["n_embd"] = m.DModel,
        ["n_inner"] = m.FfnSize,
        ["n_positions"] = m.Context,
        ["n_ctx"] = m.Context,
        ["vocab_size"] = m.Vocab,
        ["activation_function"] = "gelu_new",
        ["layer_norm_epsilon"] = m.NormEps,
        ["resid_pdrop"] = m.Dropout,
        ["embd_pdrop"] = m.Dropout,
        ["attn_pdrop"] = 0.0,
        ["tie_word_embeddings"] = m.TiedEmbeddings,
        ["torch_dtype"] = dtype,
    };

    /// <summary>How a MoE model without a Hugging Face form lays out and routes its experts, in Elastic's names (<c>moe_layout</c> says so).</summary>
    private static void AddElasticExperts(JsonObject config, MoeSpec moe, ModelSpec model)
    {
        var layers = model.Layers;
        var experts = model.IsLlama
            ? "{gate_up.weight [2, f, d] (SwiGLU's gate and up), c_proj.weight [d, f]}"
            : "{c_fc,c_proj}.{weight,bias}";
        config["num_local_experts"] = moe.Experts;
        config["num_experts_per_tok"] = moe.TopK;
        config["moe_layers"] = new JsonArray(Enumerable.Range(0, layers).Where(moe.IsMoeLayer).Select(l => (JsonNode)l).ToArray());
        config["capacity_factor"] = moe.CapacityFactor;
        config["router_aux_loss_coef"] = moe.AuxLoss;
        config["router_z_loss_coef"] = moe.ZLoss;
        config["moe_layout"] = "Elastic's names, linear weights [out, in]: in each MoE layer the MLP is h.N.mlp.router.weight [E, d] and experts "
            + $"h.N.mlp.experts.E.{experts}, each the dense MLP's shape; gates: softmax of the router logits, the top "
            + "num_experts_per_tok experts (ties to the lower index), renormalised to sum to 1 when more than one; output: the gated sum of the "
            + "chosen experts' MLP outputs";
    }
    /// <summary>
    /// The model a config describes, over <paramref name="defaults"/> (the fields a config does not carry: dropout, tensor
    /// shards). Every problem is listed at once, each naming <paramref name="file"/> and the field.
    /// </summary>
    public static ModelSpec Read(JsonObject config, string file, ModelSpec defaults)
    {
        var errors = new List<string>();
        var type = Text("model_type");
        ModelSpec? model = type switch
        {
            "gpt2" => Gpt2(),
            "llama" => Llama(),
            "mixtral" => Mixtral(),
            null => null,
            _ => Fail<ModelSpec>("model_type", $"'{type}' is not an architecture Elastic trains (gpt2, llama, mixtral)"),
        };
        if (type is null) errors.Add($"{file}: model_type: missing (gpt2, llama or mixtral)");
        return errors.Count > 0 || model is null ? throw new InvalidDataException(string.Join("; ", errors)) : model;

        ModelSpec Gpt2()
        {
            var d = Int("n_embd");
            var ffn = config["n_inner"] is null ? 4 * d : Int("n_inner");
            if (Text("activation_function") is { } activation and not "gelu_new")
                Fail<int>("activation_function", $"'{activation}' is not computed by Elastic's GPT-2 (gelu_new)");
            foreach (var flag in new[] { "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn" })
                if (config[flag] is { } value && value.GetValue<bool>()) Fail<int>(flag, "true is not computed by Elastic's GPT-2");
            return defaults with
            {
                Architecture = "gpt2", Layers = Int("n_layer"), Heads = Int("n_head"), DModel = d, Ffn = ffn, Context = Int("n_positions"),
                Vocab = Int("vocab_size"), NormEps = Number("layer_norm_epsilon", 1e-5), TiedEmbeddings = Bool("tie_word_embeddings", true), KvHeads = 0,
                Moe = ElasticExperts(),
            };
        }

        // A MoE model in Elastic's names says so (moe_layout); its experts are the spec's (spec.json), as no config field gives them all.
        MoeSpec? ElasticExperts() => config["moe_layout"] is null ? null
            : defaults.Moe ?? Fail<MoeSpec>("moe_layout", "a mixture-of-experts model in Elastic's names: its spec's model.moe says how the experts are laid out (give it, or start from the run folder with its spec.json)");

        ModelSpec Mixtral()
        {
            if (config["sliding_window"] is JsonValue window && window.TryGetValue<int>(out var w) && w < Int("max_position_embeddings"))
                Fail<int>("sliding_window", $"{w}: Elastic's attention sees the whole context");
            var topK = Int("num_experts_per_tok");
            if (topK == 1) Fail<int>("num_experts_per_tok", "1: Elastic gates a single expert by its probability, Mixtral by 1");
            return Llama() with { Moe = (defaults.Moe ?? new MoeSpec()) with { Experts = Int("num_local_experts"), TopK = topK, Every = 1, CapacityFactor = null } };
        }

        ModelSpec Llama()
        {
            var (d, heads) = (Int("hidden_size"), Int("num_attention_heads"));
            if (config["head_dim"] is not null && heads > 0 && Int("head_dim") != d / heads)
                Fail<int>("head_dim", $"{Int("head_dim")} is not hidden_size / num_attention_heads = {d / heads}");
            if (Text("hidden_act") is { } act and not "silu") Fail<int>("hidden_act", $"'{act}' is not computed by Elastic's Llama (silu)");
            foreach (var flag in new[] { "attention_bias", "mlp_bias" })
                if (config[flag] is { } value && value.GetValue<bool>()) Fail<int>(flag, "true: Elastic's Llama has no biases");
            if (config["rope_scaling"] is JsonObject) Fail<int>("rope_scaling", "is not supported (plain rotary embeddings only)");
            return defaults with
            {
                Architecture = "llama", Layers = Int("num_hidden_layers"), Heads = heads, DModel = d, Ffn = Int("intermediate_size"),
                KvHeads = config["num_key_value_heads"] is null ? heads : Int("num_key_value_heads"), Context = Int("max_position_embeddings"),
                Vocab = Int("vocab_size"), NormEps = Number("rms_norm_eps", 1e-6), RopeTheta = Number("rope_theta", 10000),
                TiedEmbeddings = Bool("tie_word_embeddings", false), Moe = ElasticExperts(),
            };
        }

        T Fail<T>(string field, string message)
        {
            errors.Add($"{file}: {field}: {message}");
            return default!;
        }

        string? Text(string field) => config[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

        int Int(string field) => config[field] is JsonValue v && v.TryGetValue<int>(out var i) ? i
            : Fail<int>(field, config[field] is null ? "missing" : $"'{config[field]!.ToJsonString()}' is not an integer");

        double Number(string field, double otherwise) => config[field] is null ? otherwise
            : config[field] is JsonValue v && v.TryGetValue<double>(out var x) ? x
            : Fail<double>(field, $"'{config[field]!.ToJsonString()}' is not a number");

        bool Bool(string field, bool otherwise) => config[field] is null ? otherwise
            : config[field] is JsonValue v && v.TryGetValue<bool>(out var b) ? b
            : Fail<bool>(field, $"'{config[field]!.ToJsonString()}' is not true or false");
    }

    /// <summary>Spec fields that contradict the config's model (a field left at its default takes the config's value).</summary>
    public static IEnumerable<SpecError> Contradictions(ModelSpec spec, ModelSpec config, string file)
    {
        var defaults = new ModelSpec();
        foreach (var (field, given, fallback, read) in new (string, object, object, object)[]
                 {
                     ("model.architecture", spec.Architecture, defaults.Architecture, config.Architecture),
                     ("model.layers", spec.Layers, defaults.Layers, config.Layers),
                     ("model.dModel", spec.DModel, defaults.DModel, config.DModel),
                     ("model.heads", spec.Heads, defaults.Heads, config.Heads),
                     ("model.kvHeads", spec.KvHeads, defaults.KvHeads, config.KvHeads),
                     ("model.ffn", spec.Ffn, defaults.Ffn, config.Ffn),
                     ("model.vocab", spec.Vocab, defaults.Vocab, config.Vocab),
                     ("model.context", spec.Context, defaults.Context, config.Context),
                     ("model.tiedEmbeddings", spec.TiedEmbeddings, defaults.TiedEmbeddings, config.TiedEmbeddings),
                     ("model.ropeTheta", spec.RopeTheta, defaults.RopeTheta, config.RopeTheta),
                     ("model.normEps", spec.NormEps, defaults.NormEps, config.NormEps),
                 })
            if (!Equals(given, fallback) && !Equals(given, read))
                yield return new SpecError(field, Convert.ToString(given, CultureInfo.InvariantCulture), $"contradicts {file}, which gives {Convert.ToString(read, CultureInfo.InvariantCulture)}");
        // A spec's experts must be the folder's; a spec without them takes the folder's.
        if (spec.Moe is not { } wanted) yield break;
        if (config.Moe is not { } held)
        {
            yield return new SpecError("model.moe", $"{wanted.Experts} experts", $"contradicts {file}, which has no experts");
            yield break;
        }
        foreach (var (field, given, read) in new (string, object?, object?)[]
                 {
                     ("model.moe.experts", wanted.Experts, held.Experts), ("model.moe.topK", wanted.TopK, held.TopK),
                     ("model.moe.every", wanted.Every, held.Every), ("model.moe.capacityFactor", wanted.CapacityFactor, held.CapacityFactor),
                 })
            if (!Equals(given, read))
                yield return new SpecError(field, Convert.ToString(given, CultureInfo.InvariantCulture) ?? "null", $"contradicts {file}, which gives {Convert.ToString(read, CultureInfo.InvariantCulture) ?? "null (dropless)"}");
    }
}
