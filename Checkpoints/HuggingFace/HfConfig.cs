using System.Globalization;
using System.Text.Json.Nodes;
using Elastic.Jobs;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// A model's <c>config.json</c> as Hugging Face transformers writes and reads it (GPT2Config, LlamaConfig): written from a
/// model spec, and read back into one, refusing what Elastic's architectures do not compute (another activation, biases
/// in Llama's projections, rope scaling) with the file and field named.
/// </summary>
public static class HfConfig
{
    public const string FileName = "config.json";

    /// <param name="dtype">The weights' <c>torch_dtype</c>.</param>
    public static JsonObject Write(ModelSpec m, string dtype = "float32") => m.IsLlama
        ? new JsonObject
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
        }
        : new JsonObject
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
            null => null,
            _ => Fail<ModelSpec>("model_type", $"'{type}' is not an architecture Elastic trains (gpt2, llama)"),
        };
        if (type is null) errors.Add($"{file}: model_type: missing (gpt2 or llama)");
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
            };
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
                TiedEmbeddings = Bool("tie_word_embeddings", false),
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
    }
}
