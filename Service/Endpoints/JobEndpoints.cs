using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using Elastic.Client;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Service.Access;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Elastic.Service.Endpoints;

/// <summary>
/// /api/v1/jobs: a tenant's jobs. A job of another tenant answers exactly as a job that does not exist (404), before
/// anything is done to it.
/// </summary>
public static class JobEndpoints
{
    /// <summary>A spec is a few kilobytes; anything near this is not one.</summary>
    private const int MaxSpecBytes = 1 << 20;

    public static void MapJobEndpoints(this IEndpointRouteBuilder routes)
    {
        var jobs = routes.MapGroup("/api/v1/jobs").WithTags("Jobs").RequireAuthorization()
            .AddEndpointFilter(async (context, next) =>
            {
                try
                {
                    return await next(context);
                }
                catch (ElasticException e)
                {
                    return ApiProblems.From(e);
                }
            });
        jobs.MapPost("/", Submit).WithSummary("Submit a job (Idempotency-Key header: a retry returns the same job)")
            .Accepts<TrainingSpec>("application/json");
        jobs.MapGet("/", List).WithSummary("List jobs, newest first");
        jobs.MapGet("/{jobId}", Get).WithSummary("A job's status");
        jobs.MapGet("/{jobId}/watch", Watch).WithSummary("Server-sent events: the job's progress (steps, held-out losses, events) until it ends")
            .Produces<JobProgress>(StatusCodes.Status200OK, "text/event-stream");
        jobs.MapGet("/{jobId}/report", Report).WithSummary("The run report");
        jobs.MapPost("/{jobId}/cancel", (string jobId, ClaimsPrincipal user, ElasticClient client, CancellationToken c) =>
            Act(jobId, user, client, () => client.CancelAsync(jobId, c), c)).WithSummary("Cancel a job");
        jobs.MapPost("/{jobId}/checkpoint", (string jobId, ClaimsPrincipal user, ElasticClient client, CancellationToken c) =>
            Act(jobId, user, client, () => client.CheckpointAsync(jobId, c), c)).WithSummary("Checkpoint at the next step boundary");
        jobs.MapPost("/{jobId}/resume", (string jobId, ResumeRequest? request, ClaimsPrincipal user, ElasticClient client, CancellationToken c) =>
            Act(jobId, user, client, () => client.ResumeAsync(jobId, request?.Step, c), c)).WithSummary("Resume a failed or cancelled job from a checkpoint");
        jobs.MapPost("/{jobId}/replan", Replan).WithSummary("Change a running job's layout at its next step boundary");
        jobs.MapPost("/{jobId}/export", Export).WithSummary("Export a checkpoint as a model folder");
    }

    private static async Task<Results<Created<SubmittedJob>, ProblemHttpResult>> Submit(HttpRequest request, ClaimsPrincipal user, ElasticClient client,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, CancellationToken cancellation)
    {
        if (request.ContentLength > MaxSpecBytes) return ApiProblems.BadRequest("spec", null, $"is {request.ContentLength} bytes; a spec may have at most {MaxSpecBytes}");
        var body = await new StreamReader(request.Body).ReadToEndAsync(cancellation);
        if (body.Length > MaxSpecBytes) return ApiProblems.BadRequest("spec", null, $"is over {MaxSpecBytes} bytes");
        TrainingSpec spec;
        try
        {
            spec = SpecJson.Parse(body);
        }
        catch (SpecValidationException e)
        {
            return ApiProblems.Invalid(e.Errors);
        }
        if (idempotencyKey is { Length: 0 or > 200 }) return ApiProblems.BadRequest("Idempotency-Key", idempotencyKey, "must be 1 to 200 characters");
        var jobId = await client.SubmitAsync(spec, idempotencyKey, Caller.Of(user).Tenant, cancellation);
        return TypedResults.Created($"/api/v1/jobs/{Uri.EscapeDataString(jobId)}", new SubmittedJob(jobId));
    }

    private static async Task<Results<Ok<JobPage>, ProblemHttpResult>> List(ClaimsPrincipal user, ElasticClient client, string? state, string? tenant,
        int? pageSize, string? pageToken, CancellationToken cancellation)
    {
        var (page, error) = JobListing.Page(await client.ListAsync(cancellation), Caller.Of(user), state, tenant, pageSize, pageToken);
        return page is not null ? TypedResults.Ok(page) : ApiProblems.Invalid([error!]);
    }

    private static async Task<Results<Ok<JobStatus>, ProblemHttpResult>> Get(string jobId, ClaimsPrincipal user, ElasticClient client, CancellationToken cancellation) =>
        await Owned(jobId, user, client, cancellation) is { } status ? TypedResults.Ok(status) : ApiProblems.JobNotFound(jobId);

    private static async Task<Results<Ok<RunReport>, ProblemHttpResult>> Report(string jobId, ClaimsPrincipal user, ElasticClient client, CancellationToken cancellation) =>
        await Owned(jobId, user, client, cancellation) is null ? ApiProblems.JobNotFound(jobId) : TypedResults.Ok(await client.GetReportAsync(jobId, cancellation));

    private static async Task<Results<Ok<JobStatus>, ProblemHttpResult>> Replan(string jobId, ReplanRequest? request, ClaimsPrincipal user, ElasticClient client, CancellationToken cancellation)
    {
        if (string.IsNullOrWhiteSpace(request?.Plan)) return ApiProblems.BadRequest("plan", request?.Plan, "is required, e.g. \"dp=2,tp=2\"");
        return await Act(jobId, user, client, () => client.ReplanAsync(jobId, request.Plan, cancellation), cancellation);
    }

    private static async Task<Results<Ok<ExportedModel>, ProblemHttpResult>> Export(string jobId, ExportRequest? request, ClaimsPrincipal user, ElasticClient client,
        IOptions<ApiOptions> options, CancellationToken cancellation)
    {
        if (await Owned(jobId, user, client, cancellation) is not { } status) return ApiProblems.JobNotFound(jobId);
        // The service chooses where: a tenant never names a path on the service's storage.
        var directory = Path.GetFullPath(Path.Combine(options.Value.ExportDirectory, status.Tenant, jobId));
        return TypedResults.Ok(new ExportedModel(await client.ExportAsync(jobId, directory, request?.Step, cancellation)));
    }

    private static async Task<Results<ServerSentEventsResult<JobProgress>, ProblemHttpResult>> Watch(string jobId, ClaimsPrincipal user, ElasticClient client,
        [FromHeader(Name = "Last-Event-ID")] string? lastEventId, CancellationToken cancellation)
    {
        if (await Owned(jobId, user, client, cancellation) is null) return ApiProblems.JobNotFound(jobId);
        var resumeAt = ProgressCursor.Parse(lastEventId);
        if (lastEventId is not null && resumeAt is null) return ApiProblems.BadRequest("Last-Event-ID", lastEventId, "is not an event id this API gave out");
        return TypedResults.ServerSentEvents(Progress(client, jobId, resumeAt ?? ProgressCursor.Start, cancellation));
    }

    private static async IAsyncEnumerable<SseItem<JobProgress>> Progress(ElasticClient client, string jobId, ProgressCursor from,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        await foreach (var progress in client.WatchAsync(jobId, from.Step, from.Event, cancellation))
        {
            from = from.After(progress);
            yield return new SseItem<JobProgress>(progress, "progress") { EventId = from.ToString() };
        }
    }

    private static async Task<Results<Ok<JobStatus>, ProblemHttpResult>> Act(string jobId, ClaimsPrincipal user, ElasticClient client, Func<Task<JobStatus>> action,
        CancellationToken cancellation) =>
        await Owned(jobId, user, client, cancellation) is null ? ApiProblems.JobNotFound(jobId) : TypedResults.Ok(await action());

    /// <summary>The job if this caller may see it; null if it does not exist or is another tenant's (the caller cannot tell which).</summary>
    private static async Task<JobStatus?> Owned(string jobId, ClaimsPrincipal user, ElasticClient client, CancellationToken cancellation)
    {
        try
        {
            var status = await client.GetStatusAsync(jobId, cancellation);
            return Caller.Of(user).Sees(status.Tenant) ? status : null;
        }
        catch (JobNotFoundException)
        {
            return null;
        }
    }
}
