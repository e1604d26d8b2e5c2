namespace Elastic.Training.Data;

/// <summary>The tokenizers a spec can name. A BPE tokenizer registers here next to the byte one.</summary>
public static class Tokenizers
{
    public static IReadOnlyList<string> Names { get; } = ["byte"];

    public static bool IsKnown(string name) => Names.Contains(name);

    public static ITokenizer Create(string name) => name switch
    {
        "byte" => new ByteTokenizer(),
        _ => throw new ArgumentException($"unknown tokenizer '{name}'", nameof(name)),
    };
}
