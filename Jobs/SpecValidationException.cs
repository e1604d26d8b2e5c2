namespace Elastic.Jobs;

/// <summary>A spec was rejected; <see cref="Errors"/> lists every problem found, not just the first.</summary>
public sealed class SpecValidationException(IReadOnlyList<SpecError> errors)
    : Exception(Format(errors))
{
    public IReadOnlyList<SpecError> Errors { get; } = errors;

    private static string Format(IReadOnlyList<SpecError> errors) =>
        $"the job spec is invalid ({errors.Count} error{(errors.Count == 1 ? "" : "s")}):"
        + string.Concat(errors.Select(e => Environment.NewLine + "  - " + e));
}
