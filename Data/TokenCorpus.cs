using Elastic.Jobs;

namespace Elastic.Data;

/// <summary>
/// The tokens a job trains on: each source (one, or a weighted mixture's) split into a training part and a held-out tail, and
/// the blend that says which source each global sample comes from.
/// </summary>
public sealed class TokenCorpus
{
    private readonly IReadOnlyList<TokenDataset> _train;
    private readonly IReadOnlyList<TokenDataset> _heldOut;
    private readonly SampleBlend _trainBlend;
    private readonly SampleBlend _heldOutBlend;

    private TokenCorpus(ITokenizer tokenizer, IReadOnlyList<TokenDataset> train, IReadOnlyList<TokenDataset> heldOut, IReadOnlyList<double> weights)
    {
        Tokenizer = tokenizer;
        (_train, _heldOut) = (train, heldOut);
        _trainBlend = new SampleBlend(weights);
        // Held-out windows in order, the sources interleaved by weight as far as each has windows.
        _heldOutBlend = new SampleBlend(weights);
        HeldOutWindows = heldOut.Sum(h => (long)h.Count);
    }

    public ITokenizer Tokenizer { get; }

    /// <summary>Tokens per sample (context + 1).</summary>
    public int Window => _train[0].Window;

    /// <summary>Whether some targets carry no loss (supervised data in some source).</summary>
    public bool Masked => _train.Any(t => t.Masked);

    /// <summary>The held-out windows of every source.</summary>
    public long HeldOutWindows { get; }

    /// <summary>Global sample <paramref name="global"/>: its source's training split and, after that source's epoch shuffle, its window there.</summary>
    public (TokenDataset Data, int Window) TrainSample(long global)
    {
        var (source, sample) = _trainBlend.Of(global);
        return (_train[source], _train[source].WindowOf(sample));
    }

    /// <summary>Whether some source is read as samples need it (a prepared dataset) rather than held whole.</summary>
    public bool Streamed => _train.Any(t => t.Source is not InMemoryTokens);

    /// <summary>How long reads of this corpus's sources have waited for tokens not fetched yet, over every thread.</summary>
    public TimeSpan DataWaited => _train.Select(t => t.Source).Distinct().Aggregate(TimeSpan.Zero, (sum, s) => sum + s.Waited);

    /// <summary>Held-out window <paramref name="index"/> (in order, no shuffle; each source's wrap around).</summary>
    public (TokenDataset Data, int Window) HeldOutSample(long index)
    {
        var (source, sample) = _heldOutBlend.Of(index);
        return (_heldOut[source], (int)(sample % _heldOut[source].Count));
    }

    /// <summary>Loads the spec's data; a source too small for one window in either split is a spec error naming it.</summary>
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
        var sources = spec.Data.Sources();
        if (sources.Any(s => s.Source.Format == "text") && tokenizer.VocabSize > spec.Model.Vocab)
            throw new SpecValidationException([new SpecError("model.vocab", $"{spec.Model.Vocab}", $"is smaller than the vocabulary of tokenizer '{spec.Data.Tokenizer}' ({tokenizer.VocabSize})")]);
        var splits = sources.Select((s, i) =>
        {
            try
            {
                var (tokens, trained) = CorpusSource.Read(s.Source, tokenizer, spec.Model.Vocab);
                // Each source shuffles its epochs with a seed of its own (the first, or only, one with the spec's).
                return Split(spec with { Seed = spec.Seed + (ulong)i }, tokens, trained, $"{s.Field}.source", s.Source.Source);
            }
            catch (InvalidDataException e)
            {
                throw new SpecValidationException([new SpecError(e.Message.StartsWith("tokenizer", StringComparison.Ordinal) ? "data.tokenizer" : $"{s.Field}.source", s.Source.Source, e.Message)]);
            }
        }).ToList();
        return new TokenCorpus(tokenizer, splits.Select(s => s.Train).ToList(), splits.Select(s => s.HeldOut).ToList(), sources.Select(s => s.Source.Weight).ToList());
    }

    /// <summary>One source's tokens as a corpus (tests and benchmarks).</summary>
    /// <param name="trained">Which targets the loss is taken over (supervised data); null: every one.</param>
    public static TokenCorpus FromTokens(TrainingSpec spec, ITokenizer tokenizer, int[] tokens, bool[]? trained = null) =>
        FromSource(spec, tokenizer, new InMemoryTokens(tokens), trained);

    /// <summary>One source as a corpus (tests and benchmarks: a dataset opened on a store of their own).</summary>
    public static TokenCorpus FromSource(TrainingSpec spec, ITokenizer tokenizer, ITokenSource tokens, bool[]? trained = null)
    {
        var (train, heldOut) = Split(spec, tokens, trained, "data.source", spec.Data.Source);
        return new TokenCorpus(tokenizer, [train], [heldOut], [1.0]);
    }

    private static (TokenDataset Train, TokenDataset HeldOut) Split(TrainingSpec spec, ITokenSource tokens, bool[]? trained, string field, string source)
    {
        var window = spec.Model.Context + 1;
        var heldOutLength = (long)Math.Ceiling(tokens.Length * spec.Data.HeldOutFraction);
        var trainLength = tokens.Length - heldOutLength;
        var train = new TokenDataset(tokens, 0, trainLength, window, spec.Seed, trained);
        var heldOut = new TokenDataset(tokens, trainLength, heldOutLength, window, spec.Seed, trained);
        if (train.Count == 0 || heldOut.Count == 0)
            throw new SpecValidationException([new SpecError(field, source,
                $"{tokens.Length} tokens are too few for one window of model.context {spec.Model.Context} + 1 in both the training split and the held-out split (data.heldOutFraction {spec.Data.HeldOutFraction})")]);
        return (train, heldOut);
    }
}
