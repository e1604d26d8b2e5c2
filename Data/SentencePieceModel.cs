using System.Text;
using Microsoft.ML.Tokenizers;

namespace Elastic.Data;

/// <summary>
/// A SentencePiece model (a <c>.model</c>, or a Unigram <c>tokenizer.json</c>) through Microsoft.ML.Tokenizers, with the two
/// behaviours of Google's sentencepiece the library leaves out, so that ids and texts are the reference's (tested against ids
/// recorded from it): a run of unknown pieces is one unknown id (sentencepiece merges them, as Hugging Face's Unigram does), and
/// an unknown id decodes as " ⁇ " (sentencepiece's default unk_surface).
/// </summary>
public sealed class SentencePieceModel : ITokenizer
{
    private const string UnknownSurface = " \u2047 ";
    private const char WordBoundary = '\u2581';
    private readonly SentencePieceTokenizer _tokenizer;
    private readonly HashSet<int> _startsWords;

    /// <param name="vocabSize">Ids the model may give (its pieces and any tokens added after them).</param>
    public SentencePieceModel(string name, SentencePieceTokenizer tokenizer, int vocabSize, int? endOfText)
    {
        (Name, _tokenizer, VocabSize, EndOfText) = (name, tokenizer, vocabSize, endOfText);
        _startsWords = tokenizer.Vocabulary.Where(p => p.Key.Length > 0 && p.Key[0] == WordBoundary).Select(p => p.Value).ToHashSet();
    }

    public string Name { get; }
    public int VocabSize { get; }
    public int? EndOfText { get; }

    public int[] Encode(string text)
    {
        var fused = new List<int>();
        foreach (var id in _tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true))
            if (id != _tokenizer.UnknownId || fused.Count == 0 || fused[^1] != id)
                fused.Add(id);
        return fused.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder();
        var start = 0;
        for (var i = 0; i <= ids.Length; i++)
        {
            if (i < ids.Length && ids[i] != _tokenizer.UnknownId) continue;
            if (i > start)
            {
                // The library drops a word boundary at the start of what it decodes; after an unknown piece it is a space.
                if (start > 0 && _startsWords.Contains(ids[start])) text.Append(' ');
                text.Append(_tokenizer.Decode(ids[start..i].ToArray()));
            }
            if (i < ids.Length) text.Append(UnknownSurface);
            start = i + 1;
        }
        return text.ToString();
    }
}
