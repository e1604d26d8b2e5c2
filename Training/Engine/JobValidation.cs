using Elastic.Jobs;
using Elastic.Training.Data;

namespace Elastic.Training.Engine;

/// <summary>Everything the engine checks before it accepts a spec: the spec's own rules plus whether its data can be read here.</summary>
public static class JobValidation
{
    public static IReadOnlyList<SpecError> Validate(TrainingSpec spec)
    {
        var errors = SpecValidator.Validate(spec);
        if (!string.IsNullOrWhiteSpace(spec.Data.Source) && CorpusSource.Check(spec.Data.Source, spec.Data.Format) is { } problem)
            errors.Add(new SpecError("data.source", spec.Data.Source, problem));
        return errors;
    }

    /// <summary>Throws <see cref="SpecValidationException"/> listing every problem, or returns when the spec is valid.</summary>
    public static void ThrowIfInvalid(TrainingSpec spec)
    {
        var errors = Validate(spec);
        if (errors.Count > 0) throw new SpecValidationException(errors);
    }
}
