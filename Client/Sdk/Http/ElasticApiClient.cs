using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Client.Http;

/// <summary>
/// The SDK over the HTTP API, with a tenant's API key or bearer token. Problem answers become the same
/// <see cref="ElasticException"/> subtypes the Orleans client throws; 429 and 503 are retried after the wait the
/// service names (a submit is safe to retry: it always carries an idempotency key).
/// </summary>
public sealed class ElasticApiClient(HttpClient http) : IElasticClient, IDisposable
{
    private const int Attempts = 4;
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(30);

    /// <summary>A client of the API at <paramref name="api"/> presenting <paramref name="credential"/> (an API key or a bearer token).</summary>
    public static ElasticApiClient Create(Uri api, string credential)
    {
        var http = new HttpClient { BaseAddress = api, Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", credential);
        return new ElasticApiClient(http);
    }

    public async Task<string> SubmitAsync(TrainingSpec spec, string? idempotencyKey = null, CancellationToken cancellation = default)
    {
        var key = idempotencyKey ?? Guid.NewGuid().ToString("N");
        var json = SpecJson.Serialize(spec);
        var submitted = await Send<SubmittedJob>(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/jobs") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", key);
            return request;
        }, Failure.Submit, null, cancellation);
        return submitted.JobId;
    }

    public Task<JobStatus> GetStatusAsync(string jobId, CancellationToken cancellation = default) => Get<JobStatus>(JobPath(jobId), jobId, cancellation);

    public async Task<IReadOnlyList<JobStatus>> ListAsync(CancellationToken cancellation = default)
    {
        var jobs = new List<JobStatus>();
        string? token = null;
        do
        {
            var page = await Get<JobPage>($"api/v1/jobs?pageSize=200{(token is null ? "" : $"&pageToken={Uri.EscapeDataString(token)}")}", null, cancellation);
            jobs.AddRange(page.Jobs);
            token = page.NextPageToken;
        } while (token is not null);
        return jobs;
    }

    public Task<JobStatus> CancelAsync(string jobId, CancellationToken cancellation = default) => Post<JobStatus>($"{JobPath(jobId)}/cancel", null, jobId, cancellation);

    public Task<JobStatus> CheckpointAsync(string jobId, CancellationToken cancellation = default) => Post<JobStatus>($"{JobPath(jobId)}/checkpoint", null, jobId, cancellation);

    public Task<JobStatus> ReplanAsync(string jobId, string plan, CancellationToken cancellation = default) =>
        Send<JobStatus>(() => Json(HttpMethod.Post, $"{JobPath(jobId)}/replan", new ReplanRequest(plan)), Failure.Replan, jobId, cancellation);

    public Task<JobStatus> ResumeAsync(string jobId, long? step = null, CancellationToken cancellation = default) =>
        Post<JobStatus>($"{JobPath(jobId)}/resume", new ResumeRequest(step), jobId, cancellation);

    public async Task<string> ExportAsync(string jobId, string? directory, long? step = null, CancellationToken cancellation = default)
    {
        if (directory is not null) throw new ElasticException($"through the API the service chooses where exports go; {directory} cannot be named");
        return (await Post<ExportedModel>($"{JobPath(jobId)}/export", new ExportRequest(step), jobId, cancellation)).Model;
    }

    public Task<RunReport> GetReportAsync(string jobId, CancellationToken cancellation = default) => Get<RunReport>($"{JobPath(jobId)}/report", jobId, cancellation);

    public async Task<IReadOnlyList<SiloInventory>> GetInventoryAsync(CancellationToken cancellation = default) =>
        (await Get<ClusterView>("api/v1/cluster", null, cancellation)).Silos;

    public async Task<IReadOnlyList<JobShare>> GetScheduleAsync(CancellationToken cancellation = default) =>
        (await Get<ClusterView>("api/v1/cluster", null, cancellation)).Jobs;

    /// <summary>The job's server-sent events; a dropped stream is reopened where it stopped (Last-Event-ID).</summary>
    public async IAsyncEnumerable<JobProgress> WatchAsync(string jobId, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        string? lastEventId = null;
        for (var drops = 0; ; drops++)
        {
            using var response = await Open(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, $"{JobPath(jobId)}/watch");
                if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
                return request;
            }, Failure.Default, jobId, HttpCompletionOption.ResponseHeadersRead, cancellation);
            var events = SseParser.Create(await response.Content.ReadAsStreamAsync(cancellation), (_, data) => JsonSerializer.Deserialize<JobProgress>(data, ApiJson.Options)!)
                .EnumerateAsync(cancellation).GetAsyncEnumerator(cancellation);
            JobProgress? last = null;
            while (true)
            {
                try
                {
                    if (!await events.MoveNextAsync()) break;
                }
                catch (Exception e) when (e is IOException or HttpRequestException && drops < Attempts)
                {
                    break;
                }
                (lastEventId, last) = (events.Current.EventId, events.Current.Data);
                yield return last;
            }
            await events.DisposeAsync();
            if (last?.Status.State.IsTerminal() == true || (last is null && drops >= Attempts)) yield break;
        }
    }

    public Task<CreatedKey> CreateKeyAsync(CreateKeyRequest request, CancellationToken cancellation = default) => Post<CreatedKey>("api/v1/keys", request, null, cancellation);

    public Task<IReadOnlyList<ApiKeyInfo>> ListKeysAsync(CancellationToken cancellation = default) => Get<IReadOnlyList<ApiKeyInfo>>("api/v1/keys", null, cancellation);

    public Task<ApiKeyInfo> RevokeKeyAsync(string keyId, CancellationToken cancellation = default) =>
        Send<ApiKeyInfo>(() => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/keys/{Uri.EscapeDataString(keyId)}"), Failure.Default, null, cancellation);

    public Task<ApiIdentity> WhoAmIAsync(CancellationToken cancellation = default) => Get<ApiIdentity>("api/v1/me", null, cancellation);

    private static string JobPath(string jobId) =>
        string.IsNullOrWhiteSpace(jobId) ? throw new JobNotFoundException(jobId) : $"api/v1/jobs/{Uri.EscapeDataString(jobId)}";

    private static HttpRequestMessage Json(HttpMethod method, string path, object? body) =>
        new(method, path) { Content = body is null ? null : JsonContent.Create(body, body.GetType(), options: ApiJson.Options) };

    private Task<T> Get<T>(string path, string? jobId, CancellationToken cancellation) =>
        Send<T>(() => new HttpRequestMessage(HttpMethod.Get, path), Failure.Default, jobId, cancellation);

    private Task<T> Post<T>(string path, object? body, string? jobId, CancellationToken cancellation) =>
        Send<T>(() => Json(HttpMethod.Post, path, body), Failure.Default, jobId, cancellation);

    private async Task<T> Send<T>(Func<HttpRequestMessage> request, Failure failure, string? jobId, CancellationToken cancellation)
    {
        using var response = await Open(request, failure, jobId, HttpCompletionOption.ResponseContentRead, cancellation);
        return (await response.Content.ReadFromJsonAsync<T>(ApiJson.Options, cancellation))!;
    }

    /// <summary>Sends until an answer that is not 429 or 503 (or the attempts run out); a failure becomes the SDK's exception.</summary>
    private async Task<HttpResponseMessage> Open(Func<HttpRequestMessage> request, Failure failure, string? jobId, HttpCompletionOption completion, CancellationToken cancellation)
    {
        for (var attempt = 1; ; attempt++)
        {
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request(), completion, cancellation);
            }
            catch (HttpRequestException) when (attempt < Attempts)
            {
                await Task.Delay(Backoff(attempt), cancellation);
                continue;
            }
            catch (HttpRequestException e)
            {
                throw new ClusterUnavailableException($"the API at {http.BaseAddress} did not answer: {e.Message}", e);
            }
            if (response.IsSuccessStatusCode) return response;
            using (response)
            {
                var problem = await Problem.Read(response, cancellation);
                if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable && attempt < Attempts)
                {
                    var wait = response.Headers.RetryAfter?.Delta ?? Backoff(attempt);
                    await Task.Delay(wait < MaxWait ? wait : MaxWait, cancellation);
                    continue;
                }
                throw ExceptionFor(response.StatusCode, problem, failure, jobId);
            }
        }
    }

    private static TimeSpan Backoff(int attempt) => TimeSpan.FromMilliseconds(200 * (1 << attempt));

    private static ElasticException ExceptionFor(HttpStatusCode status, Problem problem, Failure failure, string? jobId) => (status, failure) switch
    {
        (HttpStatusCode.BadRequest, Failure.Submit) when problem.Errors.Count > 0 => new JobSpecRejectedException(problem.Errors),
        (HttpStatusCode.BadRequest, Failure.Replan) => new LayoutRejectedException(problem.Detail),
        (HttpStatusCode.Conflict, Failure.Submit) => new IdempotencyConflictException(problem.Detail),
        (HttpStatusCode.Conflict, _) => new JobStateException(problem.Detail),
        (HttpStatusCode.NotFound, _) when jobId is not null => new JobNotFoundException(jobId),
        (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, _) => new ElasticAccessDeniedException(problem.Detail),
        (HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests, _) => new ClusterUnavailableException(problem.Detail),
        _ => new ElasticException(problem.Detail),
    };

    /// <summary>Which call failed: the same status means different things to a submit, a re-plan and the rest.</summary>
    private enum Failure
    {
        Default,
        Submit,
        Replan,
    }

    /// <summary>A problem-details body (or what stood in for one).</summary>
    private sealed record Problem(string Detail, IReadOnlyList<SpecError> Errors)
    {
        public static async Task<Problem> Read(HttpResponseMessage response, CancellationToken cancellation)
        {
            var text = await response.Content.ReadAsStringAsync(cancellation);
            try
            {
                using var body = JsonDocument.Parse(text);
                var detail = body.RootElement.TryGetProperty("detail", out var d) ? d.GetString() : null;
                var errors = body.RootElement.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Array
                    ? e.Deserialize<List<SpecError>>(ApiJson.Options)!
                    : [];
                return new Problem(detail ?? $"{(int)response.StatusCode} {response.ReasonPhrase}", errors);
            }
            catch (JsonException)
            {
                return new Problem($"{(int)response.StatusCode} {response.ReasonPhrase}: {(text.Length > 200 ? text[..200] : text)}", []);
            }
        }
    }

    public void Dispose() => http.Dispose();
}
