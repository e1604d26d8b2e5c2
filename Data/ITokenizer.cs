namespace Elastic.Data;

/// <summary>Maps text to token ids and back. Ids are below <see cref="VocabSize"/>.</summary>
public interface ITokenizer
{
    /// <summary>What a spec's data.tokenizer names it.</summary>
    string Name { get; }

    /// <summary>One more than the largest id it emits (specials included).</summary>
    int VocabSize { get; }

    /// <summary>The id that ends a document (GPT-2's &lt;|endoftext|&gt;, a SentencePiece model's &lt;/s&gt;); null when it has none.</summary>
    int? EndOfText { get; }

    /// <summary>The text's ids, nothing added (no beginning- or end-of-sequence tokens).</summary>
    int[] Encode(string text);

    string Decode(ReadOnlySpan<int> ids);
}
