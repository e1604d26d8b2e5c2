using Elastic.Jobs;
using Elastic.Training.Data;

namespace Elastic.Training.Engine;

/// <summary>
/// Everything the engine checks before it accepts a spec: the spec's own rules, then whether its data can be
/// read here and suits the model (token ids below model.vocab, at least one window of model.context + 1 in
/// both splits). `train` and a cluster's admission run the same checks, so both refuse with the same words.
/// </summary>
public static class JobValidation
{
    public static IReadOnlyList<SpecError> Validate(TrainingSpec spec)
    {
        var errors = SpecValidator.Validate(spec);
        if (spec.Data is { Source: { } source, Format: { } format } && !string.IsNullOrWhiteSpace(source) && CorpusSource.Check(source, format) is { } problem)
            errors.Add(new SpecError("data.source", source, problem));
        if (errors.Count > 0) return errors;
        try
        {
            TokenCorpus.Load(spec);
        }
        catch (SpecValidationException e)
        {
            return e.Errors;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [new SpecError("data.source", spec.Data.Source, $"cannot be read: {e.Message}")];
        }
        return [];
    }

    /// <summary>Throws <see cref="SpecValidationException"/> listing every problem, or returns when the spec is valid.</summary>
    public static void ThrowIfInvalid(TrainingSpec spec)
    {
        var errors = Validate(spec);
        if (errors.Count > 0) throw new SpecValidationException(errors);
    }
}
