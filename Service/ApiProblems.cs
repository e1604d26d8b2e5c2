using Elastic.Client;
using Elastic.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Elastic.Service;

/// <summary>
/// Every error the API answers is an RFC 9457 problem-details body that says what was wrong, naming the field and the
/// value; never a stack trace, never another tenant's data, never a key's secret.
/// </summary>
public static class ApiProblems
{
    public static ProblemHttpResult Problem(int status, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, extensions: extensions);

    public static ProblemHttpResult BadRequest(string field, string? value, string message) => Invalid([new SpecError(field, value, message)]);

    /// <summary>400 listing every problem; the "errors" extension keeps each one's field, value and message apart for programs.</summary>
    public static ProblemHttpResult Invalid(IReadOnlyList<SpecError> errors) => Problem(StatusCodes.Status400BadRequest,
        string.Join("; ", errors.Select(e => e.ToString())),
        new Dictionary<string, object?> { ["errors"] = errors.Select(e => new { e.Field, e.Value, e.Message }).ToList() });

    /// <summary>No such job for this caller: the same answer whether it does not exist or belongs to another tenant.</summary>
    public static ProblemHttpResult JobNotFound(string jobId) => Problem(StatusCodes.Status404NotFound, $"no job '{jobId}'");

    /// <summary>What a failure the SDK reports means to an HTTP caller.</summary>
    public static ProblemHttpResult From(ElasticException e) => e switch
    {
        JobSpecRejectedException rejected => Invalid(rejected.Errors),
        JobNotFoundException missing => JobNotFound(missing.JobId),
        LayoutRejectedException => Problem(StatusCodes.Status400BadRequest, e.Message),
        IdempotencyConflictException or JobStateException => Problem(StatusCodes.Status409Conflict, e.Message),
        ClusterUnavailableException => Problem(StatusCodes.Status503ServiceUnavailable, e.Message),
        _ => Problem(StatusCodes.Status500InternalServerError, e.Message),
    };

    public static Task Unauthorized(HttpContext context, string detail)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Write(context, StatusCodes.Status401Unauthorized, detail);
    }

    public static Task Forbidden(HttpContext context, string detail) => Write(context, StatusCodes.Status403Forbidden, detail);

    public static Task Write(HttpContext context, int status, string detail)
    {
        context.Response.StatusCode = status;
        return context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Detail = detail },
        }).AsTask();
    }
}
