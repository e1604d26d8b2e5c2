using Elastic.Jobs;

namespace Elastic.Data;

/// <summary>
/// Everything the engine checks before it accepts a spec: the spec's own rules, then whether its data can be
/// read here and suits the model (token ids below model.vocab, at least one window of model.context + 1 in
/// both splits). `train` and a cluster's admission run the same checks, so both refuse with the same words.
/// </summary>
public static class JobValidation
{
    public static IReadOnlyList<SpecError> Validate(TrainingSpec spec) => Check(spec).Errors;

    /// <summary>The spec's corpus, loaded once and checked; throws <see cref="SpecValidationException"/> listing every problem.</summary>
    public static TokenCorpus LoadValidated(TrainingSpec spec)
    {
        var (errors, corpus) = Check(spec);
        return errors.Count > 0 ? throw new SpecValidationException(errors) : corpus!;
    }

    private static (IReadOnlyList<SpecError> Errors, TokenCorpus? Corpus) Check(TrainingSpec spec)
    {
        var errors = SpecValidator.Validate(spec);
        foreach (var (field, source) in spec.Data?.Sources() ?? [])
            if (source is { Source: { } path, Format: { } format } && !string.IsNullOrWhiteSpace(path) && CorpusSource.Check(path, format) is { } problem)
                errors.Add(new SpecError($"{field}.source", path, problem));
        if (errors.Count > 0) return (errors, null);
        try
        {
            return ([], TokenCorpus.Load(spec));
        }
        catch (SpecValidationException e)
        {
            return (e.Errors, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var single = spec.Data!.Mixture is null;
            return ([new SpecError(single ? "data.source" : "data.mixture", single ? spec.Data.Source : null, $"cannot be read: {e.Message}")], null);
        }
    }
}
