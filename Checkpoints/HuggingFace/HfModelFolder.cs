using System.Text.Json;
using System.Text.Json.Nodes;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// A model folder in Hugging Face's layout: <c>config.json</c> and <c>model.safetensors</c> (or shards listed by
/// <c>model.safetensors.index.json</c>), read into Elastic's parameters by name and shape, and written from them. Files
/// appear under their final names only when complete.
/// </summary>
public static class HfModelFolder
{
    public const string WeightsFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Tensors the ecosystem keeps in its files that are not parameters (causal masks, rotary frequencies).</summary>
    private static readonly string[] Buffers = [".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"];

    /// <summary>A whole parameter: Elastic's name and shape, float32 bytes.</summary>
    public sealed record Tensor(string Name, long[] Shape, ReadOnlyMemory<byte> Bytes);

    /// <summary>The tokenizer files a model folder may hold, in the order they are looked for: Hugging Face's, then SentencePiece's.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles = ["tokenizer.json", "tokenizer.model"];

    /// <summary>The tokenizer file in a local model folder, or null when it has none.</summary>
    public static string? TokenizerIn(string directory) => TokenizerFiles.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, HfConfig.FileName)) && (File.Exists(Path.Combine(directory, WeightsFile)) || File.Exists(Path.Combine(directory, IndexFile)));

    /// <summary>
    /// Writes <paramref name="parameters"/> (every parameter of <paramref name="model"/>, in name order) with Hugging Face's names
    /// and shapes in <paramref name="dtype"/> (a <c>torch_dtype</c> name, see <see cref="WeightDtype"/>), and the config (with
    /// <paramref name="extra"/> fields); a MoE model without a Hugging Face form (<see cref="HfTensorMap.HasForm"/>) keeps
    /// Elastic's names, each expert apart.
    /// </summary>
    public static void Write(string directory, ModelSpec model, IReadOnlyList<Tensor> parameters, IReadOnlyDictionary<string, string>? metadata = null,
        JsonObject? extra = null, string dtype = "float32")
    {
        var code = WeightDtype.Code(dtype);
        var entries = (HfTensorMap.HasForm(model) ? Mapped(model, parameters) : parameters.SelectMany(ElasticEntries)).Select(e => WeightDtype.Narrow(e, code)).ToList();
        var (file, _) = Safetensors.Build(entries, new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { ["format"] = "pt" });
        var config = HfConfig.Write(model, dtype);
        foreach (var (key, value) in extra ?? []) config[key] = value?.DeepClone();
        Directory.CreateDirectory(directory);
        var (weights, configPath) = (Path.Combine(directory, WeightsFile), Path.Combine(directory, HfConfig.FileName));
        File.WriteAllBytes(weights + ".tmp", file);
        File.WriteAllText(configPath + ".tmp", config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(weights + ".tmp", weights, overwrite: true);
        File.Move(configPath + ".tmp", configPath, overwrite: true);
    }

    private static List<Safetensors.Entry> Mapped(ModelSpec model, IReadOnlyList<Tensor> parameters)
    {
        var byName = parameters.ToDictionary(p => p.Name);
        return HfTensorMap.For(model).SelectMany(rule => HfTensorMap.Export(rule, byName[rule.Elastic].Bytes)).ToList();
    }

    /// <summary>A MoE model's parameter in Elastic's names; a stacked expert tensor [E, ...] as one entry per expert (h.N.mlp.experts.E.c_fc.weight).</summary>
    private static IEnumerable<Safetensors.Entry> ElasticEntries(Tensor p)
    {
        const string experts = ".mlp.experts.";
        var at = p.Name.IndexOf(experts, StringComparison.Ordinal);
        var shape = p.Name.EndsWith(".attn.c_attn.weight", StringComparison.Ordinal) || p.Name.EndsWith(".attn.c_attn.bias", StringComparison.Ordinal)
            ? [p.Shape[0] * p.Shape[1], .. p.Shape[2..]]
            : p.Shape;
        if (at < 0) return [new Safetensors.Entry(p.Name, "F32", shape, p.Bytes)];
        var each = p.Bytes.Length / (int)p.Shape[0];
        return Enumerable.Range(0, (int)p.Shape[0]).Select(e =>
            new Safetensors.Entry($"{p.Name[..(at + experts.Length)]}{e}.{p.Name[(at + experts.Length)..]}", "F32", p.Shape[1..], p.Bytes.Slice(e * each, each)));
    }

    /// <summary>
    /// The model a folder (or <c>az://CONTAINER/PREFIX</c>, see <see cref="StoreLocation"/>) holds: its config over
    /// <paramref name="defaults"/>, and every parameter's float32 bytes by Elastic name. Every missing, unexpected or misshapen
    /// tensor is named at once.
    /// </summary>
    public static (ModelSpec Model, IReadOnlyDictionary<string, byte[]> Parameters) Read(string location, ModelSpec defaults) =>
        Read(StoreLocation.Open(location), defaults);

    public static (ModelSpec Model, IReadOnlyDictionary<string, byte[]> Parameters) Read(StoreLocation location, ModelSpec defaults)
    {
        var directory = location.Display;
        var configPath = PathOf(location, HfConfig.FileName);
        var configBytes = location.ReadAsync(HfConfig.FileName).GetAwaiter().GetResult()
            ?? throw new FileNotFoundException($"{directory}: no {HfConfig.FileName} (a Hugging Face model folder has one)");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(configBytes) as JsonObject ?? throw new InvalidDataException($"{configPath}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{configPath}: not JSON ({e.Message})", e);
        }
        var model = HfConfig.Read(config, configPath, defaults);
        var tensors = ReadTensors(location);
        if (!HfTensorMap.HasForm(model)) return (model, ElasticParameters(tensors, directory));
        var errors = new List<string>();
        var parameters = new Dictionary<string, byte[]>();
        var used = new HashSet<string>();
        foreach (var rule in HfTensorMap.For(model))
        {
            var bytes = HfTensorMap.Import(rule, name =>
            {
                var part = rule.Parts.Single(p => p.Name == name);
                if (!Find(tensors, name, out var found, out var key))
                {
                    errors.Add($"{name}: missing (Elastic's {rule.Elastic}, shape [{string.Join(", ", part.Shape)}])");
                    return null;
                }
                used.Add(key);
                if (!found.Entry.Shape.SequenceEqual(part.Shape))
                {
                    errors.Add($"{found.File}: {key}: shape [{string.Join(", ", found.Entry.Shape)}], expected [{string.Join(", ", part.Shape)}]");
                    return null;
                }
                return Float32(found.Entry, found.File, errors);
            });
            if (bytes is not null) parameters[rule.Elastic] = bytes;
        }
        foreach (var (key, (file, _)) in tensors)
            if (!used.Contains(key) && !Buffers.Any(b => key.EndsWith(b, StringComparison.Ordinal)))
                errors.Add($"{file}: {key}: unexpected (no parameter of this {model.Architecture} configuration)");
        if (errors.Count > 0) throw new InvalidDataException($"{directory}: {string.Join("; ", errors)}");
        return (model, parameters);
    }

    /// <summary>
    /// A MoE model Elastic wrote in its own names (its spec gives the experts): parameters under Elastic's names, each
    /// stacked expert tensor joined again from its experts' entries in expert order.
    /// </summary>
    private static IReadOnlyDictionary<string, byte[]> ElasticParameters(Dictionary<string, (string File, Safetensors.Entry Entry)> tensors, string directory)
    {
        var expert = new System.Text.RegularExpressions.Regex(@"^(?<layer>h\.\d+\.mlp\.experts\.)(?<e>\d+)\.(?<name>.+)$");
        var parameters = new Dictionary<string, byte[]>();
        foreach (var group in tensors.Values.GroupBy(t => expert.Match(t.Entry.Name) is { Success: true } m ? m.Groups["layer"].Value + m.Groups["name"].Value : t.Entry.Name))
        {
            var parts = group.OrderBy(t => expert.Match(t.Entry.Name) is { Success: true } m ? int.Parse(m.Groups["e"].Value, System.Globalization.CultureInfo.InvariantCulture) : 0).ToList();
            if (parts.FirstOrDefault(p => WeightDtype.Width(p.Entry.DType) == 0) is { Entry: var odd })
                throw new InvalidDataException($"{directory}: {odd.Name}: dtype {odd.DType} (F32, BF16 or F16 expected)");
            parameters[group.Key] = parts.SelectMany(p => WeightDtype.Widen(p.Entry.Data.Span, p.Entry.DType)).ToArray();
        }
        return parameters;
    }

    /// <summary>GPT-2's hub files name parameters without the <c>transformer.</c> prefix that GPT2LMHeadModel saves with.</summary>
    private static bool Find(Dictionary<string, (string File, Safetensors.Entry Entry)> tensors, string name, out (string File, Safetensors.Entry Entry) found, out string key)
    {
        key = name;
        if (tensors.TryGetValue(name, out found)) return true;
        const string prefix = "transformer.";
        key = name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : name;
        return tensors.TryGetValue(key, out found);
    }

    /// <summary>A file's name as messages give it: the folder's path or the blob address, then the file.</summary>
    private static string PathOf(StoreLocation location, string file) => $"{location.Display.TrimEnd('/')}/{file}";

    private static Dictionary<string, (string File, Safetensors.Entry Entry)> ReadTensors(StoreLocation location)
    {
        var indexBytes = location.ReadAsync(IndexFile).GetAwaiter().GetResult();
        var files = indexBytes is null ? [WeightsFile] : IndexedFiles(indexBytes, PathOf(location, IndexFile));
        var tensors = new Dictionary<string, (string, Safetensors.Entry)>();
        foreach (var name in files)
        {
            var path = PathOf(location, name);
            var bytes = location.ReadAsync(name).GetAwaiter().GetResult()
                ?? throw new FileNotFoundException($"{location.Display}: {name} is missing{(indexBytes is null ? "" : $" (listed in {IndexFile})")}");
            IReadOnlyList<Safetensors.Entry> entries;
            try
            {
                entries = Safetensors.Read(bytes);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{path}: not a safetensors file ({e.Message})", e);
            }
            foreach (var entry in entries) tensors[entry.Name] = (path, entry);
        }
        return tensors;
    }

    private static IReadOnlyList<string> IndexedFiles(byte[] content, string index)
    {
        try
        {
            var map = JsonNode.Parse(content)?["weight_map"] as JsonObject
                ?? throw new InvalidDataException($"{index}: weight_map: missing");
            var files = map.Select(p => p.Value!.GetValue<string>()).Distinct().ToList();
            return files.FirstOrDefault(f => Path.GetFileName(f) != f) is { } outside
                ? throw new InvalidDataException($"{index}: weight_map: '{outside}' is not a file name in the folder")
                : files;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{index}: not a safetensors index ({e.Message})", e);
        }
    }

    /// <summary>A tensor's values as float32 bytes: F32 as they are, BF16 and F16 widened (exactly).</summary>
    private static byte[]? Float32(Safetensors.Entry entry, string file, List<string> errors)
    {
        var count = entry.Shape.Aggregate(1L, (a, b) => a * b);
        var width = WeightDtype.Width(entry.DType);
        if (width == 0)
        {
            errors.Add($"{file}: {entry.Name}: dtype {entry.DType} (F32, BF16 or F16 expected)");
            return null;
        }
        if (entry.Data.Length != count * width)
        {
            errors.Add($"{file}: {entry.Name}: {entry.Data.Length} bytes for {count} {entry.DType} values");
            return null;
        }
        return WeightDtype.Widen(entry.Data.Span, entry.DType);
    }
}
