using Elastic.Jobs;

namespace Elastic.GrainInterfaces;

/// <summary>The answer to a submission: a job id, or every reason it was refused (nothing was created then).</summary>
[GenerateSerializer, Immutable, Alias("Elastic.SubmitResult")]
public sealed record SubmitResult(
    [property: Id(0)] string? JobId,
    [property: Id(1)] IReadOnlyList<SpecError> Errors,
    [property: Id(2)] string? IdempotencyConflict)
{
    public static SubmitResult Accepted(string jobId) => new(jobId, [], null);
}
