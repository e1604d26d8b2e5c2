using Microsoft.ML.Tokenizers;

namespace Elastic.Data;

/// <summary>A tokenizer of Microsoft.ML.Tokenizers (tiktoken, byte-level BPE) under a spec's name for it.</summary>
public sealed class LibraryTokenizer(string name, Tokenizer tokenizer, int vocabSize, int? endOfText) : ITokenizer
{
    public string Name { get; } = name;
    public int VocabSize { get; } = vocabSize;
    public int? EndOfText { get; } = endOfText;

    /// <summary>A special token spelled out in the text encodes as that token, as Hugging Face's tokenizers do by default.</summary>
    public int[] Encode(string text) =>
        tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true).ToArray();

    public string Decode(ReadOnlySpan<int> ids) => tokenizer.Decode(ids.ToArray()) ?? "";
}
