namespace Elastic.Data;

/// <summary>The tokenizers a spec can name (SpecValidator.TokenizerVocabularies lists them). A BPE tokenizer registers here next to the byte one.</summary>
public static class Tokenizers
{
    public static ITokenizer Create(string name) => name switch
    {
        "byte" => new ByteTokenizer(),
        _ => throw new ArgumentException($"unknown tokenizer '{name}'", nameof(name)),
    };
}
