namespace Elastic.Data;

/// <summary>Maps text to token ids and back. Ids fit in 16 bits (vocabularies up to 65,536).</summary>
public interface ITokenizer
{
    string Name { get; }
    int VocabSize { get; }
    ushort[] Encode(string text);
    string Decode(ReadOnlySpan<int> ids);
}
