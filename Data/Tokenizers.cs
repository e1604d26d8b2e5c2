using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace Elastic.Data;

/// <summary>
/// The tokenizers a spec's data.tokenizer can name: <c>byte</c>; tiktoken's encodings shipped in Microsoft.ML.Tokenizers' data
/// packages (<c>tiktoken:gpt2</c>, <c>tiktoken:cl100k</c>, <c>tiktoken:o200k</c>); or a file: a Hugging Face <c>tokenizer.json</c>
/// (byte-level BPE or Unigram) or a SentencePiece <c>.model</c>. Each is built once per process.
/// </summary>
public static class Tokenizers
{
    private static readonly ConcurrentDictionary<string, Lazy<ITokenizer>> Built = new();

    /// <summary>How a tokenizer is recorded with what it made (datasets, models): a file by its name alone, since where it lies differs by machine.</summary>
    public static string Recorded(string name) => Jobs.SpecValidator.IsTokenizerFile(name) ? Path.GetFileName(name) : name;

    /// <summary>The tokenizer <paramref name="name"/> names; a file that is not a tokenizer is an <see cref="InvalidDataException"/> naming it.</summary>
    public static ITokenizer Create(string name)
    {
        var built = Built.GetOrAdd(name, n => new Lazy<ITokenizer>(() => Build(n)));
        try
        {
            return built.Value;
        }
        catch
        {
            // A file fixed after a failed load is read again.
            Built.TryRemove(name, out _);
            throw;
        }
    }

    private static ITokenizer Build(string name) => name switch
    {
        "byte" => new ByteTokenizer(),
        "tiktoken:gpt2" => Tiktoken(name, "gpt2", TiktokenTokenizer.CreateForModel("gpt2")),
        "tiktoken:cl100k" => Tiktoken(name, "cl100k_base", TiktokenTokenizer.CreateForEncoding("cl100k_base")),
        "tiktoken:o200k" => Tiktoken(name, "o200k_base", TiktokenTokenizer.CreateForEncoding("o200k_base")),
        _ when name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) => FromFile(name, HuggingFace),
        _ when name.EndsWith(".model", StringComparison.OrdinalIgnoreCase) => FromFile(name, SentencePiece),
        _ => throw new ArgumentException($"unknown tokenizer '{name}'; known: {string.Join(", ", Jobs.SpecValidator.TokenizerVocabularies.Keys)}, or a tokenizer.json or SentencePiece .model file", nameof(name)),
    };

    private static LibraryTokenizer Tiktoken(string name, string encoding, TiktokenTokenizer tokenizer)
    {
        // tiktoken's specials follow its ranks: the last special is the largest id.
        var specials = tokenizer.SpecialTokens ?? throw new InvalidOperationException($"tiktoken's {encoding} has no special tokens");
        return new LibraryTokenizer(name, tokenizer, specials.Values.Max() + 1, specials["<|endoftext|>"]);
    }

    private static ITokenizer FromFile(string path, Func<string, Stream, ITokenizer> build)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file {path} not found");
        using var stream = File.OpenRead(path);
        try
        {
            return build(path, stream);
        }
        catch (Exception e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            // The file is open: whatever the library throws now (JSON, protobuf, missing fields) is its content's fault; ours name the file already.
            throw new InvalidDataException($"{path}: not a tokenizer Elastic can read ({e.Message.Split('\n')[0]})", e);
        }
    }

    /// <summary>
    /// A Hugging Face tokenizer.json: a Unigram model through the library's own reader; a byte-level BPE model (GPT-2, Llama 3 style:
    /// vocabulary, merges, the GPT-2 split pattern) built from its parts; the added tokens are its specials.
    /// </summary>
    private static ITokenizer HuggingFace(string path, Stream stream)
    {
        var json = JsonNode.Parse(stream) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        var model = json["model"] as JsonObject ?? throw new InvalidDataException($"{path}: model: missing");
        var added = (json["added_tokens"] as JsonArray ?? []).OfType<JsonObject>()
            .ToDictionary(t => t["content"]!.GetValue<string>(), t => t["id"]!.GetValue<int>());
        var type = model["type"]?.GetValue<string>();
        if (type == "Unigram")
        {
            stream.Position = 0;
            var unigram = SentencePieceTokenizer.CreateFromTokenizerJson(stream, addBeginningOfSentence: false, addEndOfSentence: false);
            return new SentencePieceModel(path, unigram, Math.Max(unigram.Vocabulary.Count, added.Values.DefaultIfEmpty(0).Max() + 1), EndOf(added, unigram.EndOfSentenceId));
        }
        if (type != "BPE") throw new InvalidDataException($"{path}: model.type: '{type}' (BPE or Unigram expected)");
        if (!(json["pre_tokenizer"]?.ToJsonString().Contains("ByteLevel", StringComparison.Ordinal) ?? false))
            throw new InvalidDataException($"{path}: pre_tokenizer: only byte-level BPE (GPT-2, Llama 3 style) is supported");
        var vocabulary = (model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: model.vocab: missing"))
            .ToDictionary(p => p.Key, p => p.Value!.GetValue<int>());
        var merges = (model["merges"] as JsonArray ?? throw new InvalidDataException($"{path}: model.merges: missing"))
            .Select(m => m is JsonArray pair ? $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}" : m!.GetValue<string>()).ToList();
        var bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Gpt2Split(), added),
            SpecialTokens = added,
        });
        var size = Math.Max(vocabulary.Values.Max(), added.Values.DefaultIfEmpty(0).Max()) + 1;
        return new LibraryTokenizer(path, bpe, size, EndOf(added, null));
    }

    private static ITokenizer SentencePiece(string path, Stream stream)
    {
        var tokenizer = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        return new SentencePieceModel(path, tokenizer, tokenizer.Vocabulary.Count, tokenizer.EndOfSentenceId);
    }

    /// <summary>The document separator among the added tokens, by the names the common models give it.</summary>
    private static int? EndOf(IReadOnlyDictionary<string, int> added, int? otherwise) =>
        new[] { "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>" }.Select(t => added.TryGetValue(t, out var id) ? id : (int?)null).FirstOrDefault(id => id is not null) ?? otherwise;

    /// <summary>GPT-2's pre-tokenization: contractions, letters, digits, other symbols, whitespace.</summary>
    private static System.Text.RegularExpressions.Regex Gpt2Split() =>
        new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", System.Text.RegularExpressions.RegexOptions.Compiled);
}
