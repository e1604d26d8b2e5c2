using Elastic.Jobs;

namespace Elastic.Data;

/// <summary>A tokenized corpus split into a training part and a held-out tail.</summary>
public sealed class TokenCorpus
{
    private TokenCorpus(ITokenizer tokenizer, TokenDataset train, TokenDataset heldOut)
    {
        Tokenizer = tokenizer;
        Train = train;
        HeldOut = heldOut;
    }

    public ITokenizer Tokenizer { get; }
    /// <summary>Shuffled per epoch, addressed by global sample index.</summary>
    public TokenDataset Train { get; }
    /// <summary>Read in order for evaluation.</summary>
    public TokenDataset HeldOut { get; }

    /// <summary>Loads the spec's data; a corpus too small for one window in either split is a spec error.</summary>
    public static TokenCorpus Load(TrainingSpec spec)
    {
        ITokenizer tokenizer;
        try
        {
            tokenizer = Tokenizers.Create(spec.Data.Tokenizer);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException)
        {
            throw new SpecValidationException([new SpecError("data.tokenizer", spec.Data.Tokenizer, e.Message)]);
        }
        if (spec.Data.Format == "text" && tokenizer.VocabSize > spec.Model.Vocab)
            throw new SpecValidationException([new SpecError("model.vocab", $"{spec.Model.Vocab}", $"is smaller than the vocabulary of tokenizer '{spec.Data.Tokenizer}' ({tokenizer.VocabSize})")]);
        int[] tokens;
        bool[]? trained;
        try
        {
            (tokens, trained) = CorpusSource.Read(spec.Data, tokenizer, spec.Model.Vocab);
        }
        catch (InvalidDataException e)
        {
            throw new SpecValidationException([new SpecError(e.Message.StartsWith("tokenizer", StringComparison.Ordinal) ? "data.tokenizer" : "data.source", spec.Data.Source, e.Message)]);
        }
        return FromTokens(spec, tokenizer, tokens, trained);
    }

    /// <param name="trained">Which targets the loss is taken over (supervised data); null: every one.</param>
    public static TokenCorpus FromTokens(TrainingSpec spec, ITokenizer tokenizer, int[] tokens, bool[]? trained = null)
    {
        var window = spec.Model.Context + 1;
        var heldOutLength = (int)Math.Ceiling(tokens.Length * spec.Data.HeldOutFraction);
        var trainLength = tokens.Length - heldOutLength;
        var train = new TokenDataset(tokens, 0, trainLength, window, spec.Seed, trained);
        var heldOut = new TokenDataset(tokens, trainLength, heldOutLength, window, spec.Seed, trained);
        if (train.Count == 0 || heldOut.Count == 0)
            throw new SpecValidationException([new SpecError("data.source", spec.Data.Source,
                $"{tokens.Length} tokens are too few for one window of model.context {spec.Model.Context} + 1 in both the training split and the held-out split (data.heldOutFraction {spec.Data.HeldOutFraction})")]);
        return new TokenCorpus(tokenizer, train, heldOut);
    }
}
