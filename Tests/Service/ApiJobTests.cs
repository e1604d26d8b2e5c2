using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Elastic.Client;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Service;

/// <summary>The jobs API on a real cluster: submit (idempotent, bad specs named), act, watch, and tenants kept apart.</summary>
public sealed class ApiJobTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task Submitting_is_idempotent_per_tenant_and_a_bad_spec_is_refused_naming_its_fields()
    {
        using var a = api.As((await api.KeyFor("team-submit-a")).Key);
        using var b = api.As((await api.KeyFor("team-submit-b")).Key);
        var spec = TestSpecs.Tiny(steps: 2);
        var first = await Submit(a, spec, "nightly-7");
        Assert.Equal(first, await Submit(a, spec, "nightly-7"));
        Assert.Contains("nightly-7", await ApiFixture.Problem(await Post(a, spec with { Steps = 3 }, "nightly-7"), HttpStatusCode.Conflict));
        // Another tenant's key of the same name is its own.
        var other = await Submit(b, spec, "nightly-7");
        Assert.NotEqual(first, other);

        var bad = await ApiFixture.Problem(await Post(a, TestSpecs.Tiny() with { Steps = 0, Model = new ModelSpec { DModel = 30, Heads = 4 } }, "bad"), HttpStatusCode.BadRequest);
        Assert.Contains("steps = 0", bad);
        Assert.Contains("model.dModel = 30", bad);
        var response = await a.PostAsync("/api/v1/jobs", new StringContent("{ \"name\": \"x\", \"stepz\": 3 }", Encoding.UTF8, "application/json"));
        Assert.Contains("stepz", await ApiFixture.Problem(response, HttpStatusCode.BadRequest));
        Assert.Contains("spec", await ApiFixture.Problem(await a.PostAsync("/api/v1/jobs", new StringContent("{ not json", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest));

        Assert.Equal([first], (await a.GetFromJsonAsync<JobPage>("/api/v1/jobs", ApiJson.Options))!.Jobs.Select(j => j.JobId));
        await api.Cluster.Finish(first);
        await api.Cluster.Finish(other);
    }

    [Fact]
    public async Task Another_tenants_job_is_404_on_every_endpoint_nothing_changes_and_nothing_leaks()
    {
        using var owner = api.As((await api.KeyFor("team-owner")).Key);
        using var intruder = api.As((await api.KeyFor("team-intruder")).Key);
        using var admin = api.As(ApiFixture.AdminKey);
        var jobId = await Submit(owner, TestSpecs.Tiny(steps: 100_000) with { Name = "secret-project-x", Devices = new DeviceSpec { Min = 1, Max = 1 } }, null);
        await using var cancelAtEnd = new CancelAtEnd(api, jobId);
        await api.Cluster.Until(jobId, s => s.State == JobState.Running && s.CommittedStep >= 1);
        var before = await api.Cluster.Client.GetStatusAsync(jobId);

        var missing = "no-such-job-0000";
        foreach (var (method, path, body) in JobRequests)
        {
            var theirs = await intruder.SendAsync(new HttpRequestMessage(new HttpMethod(method), string.Format(path, jobId)) { Content = body });
            var none = await intruder.SendAsync(new HttpRequestMessage(new HttpMethod(method), string.Format(path, missing)) { Content = body });
            var detail = await ApiFixture.Problem(theirs, HttpStatusCode.NotFound);
            // Indistinguishable from a job that does not exist: nothing of the job (its state, tenant, progress) appears.
            Assert.Equal((await ApiFixture.Problem(none, HttpStatusCode.NotFound)).Replace(missing, jobId), detail);
            var text = await theirs.Content.ReadAsStringAsync();
            Assert.DoesNotContain("team-owner", text);
            Assert.DoesNotContain("running", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("committedStep", text);
        }
        Assert.Empty((await intruder.GetFromJsonAsync<JobPage>("/api/v1/jobs", ApiJson.Options))!.Jobs);
        Assert.Empty((await intruder.GetFromJsonAsync<JobPage>("/api/v1/jobs?tenant=team-owner", ApiJson.Options))!.Jobs);
        // The scheduler's view of the cluster shows a user its own tenant's jobs only.
        Assert.DoesNotContain(jobId, (await intruder.GetStringAsync("/api/v1/cluster")));
        Assert.Contains(jobId, (await owner.GetFromJsonAsync<ClusterView>("/api/v1/cluster", ApiJson.Options))!.Jobs.Select(j => j.JobId));
        Assert.Contains(jobId, (await admin.GetFromJsonAsync<ClusterView>("/api/v1/cluster", ApiJson.Options))!.Jobs.Select(j => j.JobId));

        var after = await api.Cluster.Client.GetStatusAsync(jobId);
        Assert.Equal(JobState.Running, after.State);
        Assert.Equal(before.Plan!.Generation, after.Plan!.Generation);
        var events = await EventsSoFar(jobId);
        Assert.DoesNotContain(events, e => e.Kind is JobEventKinds.CancelRequested or JobEventKinds.CheckpointRequested or JobEventKinds.ReplanRequested or JobEventKinds.Exported);

        // The owner and an admin see it; the admin's list can be narrowed to the tenant.
        Assert.Equal("team-owner", (await owner.GetFromJsonAsync<JobStatus>($"/api/v1/jobs/{jobId}", ApiJson.Options))!.Tenant);
        Assert.Contains(jobId, (await admin.GetFromJsonAsync<JobPage>("/api/v1/jobs?tenant=team-owner&state=running", ApiJson.Options))!.Jobs.Select(j => j.JobId));
        var cancelled = await owner.PostAsync($"/api/v1/jobs/{jobId}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal(JobState.Cancelled, (await api.Cluster.Finish(jobId)).State);
    }

    [Fact]
    public async Task The_owner_steers_a_job_and_every_refusal_is_a_problem_that_says_why()
    {
        using var owner = api.As((await api.KeyFor("team-steer")).Key);
        var jobId = await Submit(owner, TestSpecs.Tiny(steps: 100_000) with { Devices = new DeviceSpec { Min = 1, Max = 2 } }, null);
        await using var cancelAtEnd = new CancelAtEnd(api, jobId);
        await api.Cluster.Until(jobId, s => s.State == JobState.Running && s.CommittedStep >= 1);

        Assert.Contains("tp", await ApiFixture.Problem(await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/replan", new ReplanRequest("dp=1,tp=3"), ApiJson.Options), HttpStatusCode.BadRequest));
        Assert.Contains("plan", await ApiFixture.Problem(await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/replan", new { }, ApiJson.Options), HttpStatusCode.BadRequest));
        Assert.Contains("only a failed or cancelled job", await ApiFixture.Problem(await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/resume", new ResumeRequest(), ApiJson.Options), HttpStatusCode.Conflict));
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/replan", new ReplanRequest("dp=1"), ApiJson.Options)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/v1/jobs/{jobId}/checkpoint", null)).StatusCode);
        var checkpointed = await api.Cluster.Until(jobId, s => s.LastCheckpointStep is not null);
        var export = await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/export", new ExportRequest(), ApiJson.Options);
        var model = (await export.Content.ReadFromJsonAsync<ExportedModel>(ApiJson.Options))!.Model;
        Assert.Equal(Path.Combine(api.Exports, "team-steer", jobId, "model.safetensors"), model);
        Assert.True(File.Exists(model));
        Assert.Contains("no checkpoint of step 99999", await ApiFixture.Problem(await owner.PostAsJsonAsync($"/api/v1/jobs/{jobId}/export", new ExportRequest(99_999), ApiJson.Options), HttpStatusCode.Conflict));

        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/v1/jobs/{jobId}/cancel", null)).StatusCode);
        Assert.Equal(JobState.Cancelled, (await api.Cluster.Finish(jobId)).State);
        Assert.Contains("already cancelled", await ApiFixture.Problem(await owner.PostAsync($"/api/v1/jobs/{jobId}/cancel", null), HttpStatusCode.Conflict));
        var report = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{jobId}/report", ApiJson.Options);
        Assert.True(report.GetProperty("steps").GetArrayLength() >= checkpointed.LastCheckpointStep);
    }

    [Fact]
    public async Task Watching_streams_progress_as_server_sent_events_and_a_reconnect_resumes_after_the_last_event()
    {
        using var owner = api.As((await api.KeyFor("team-watch")).Key);
        var jobId = await Submit(owner, TestSpecs.Tiny(steps: 4), null);
        var events = await ReadEvents(owner, jobId, lastEventId: null);
        var steps = events.SelectMany(e => e.Progress.Steps).Select(s => s.Step).ToList();
        Assert.Equal([1L, 2, 3, 4], steps);
        Assert.Equal(JobState.Completed, events[^1].Progress.Status.State);
        Assert.Contains(events.SelectMany(e => e.Progress.Events), e => e.Kind == JobEventKinds.Completed);

        // A watcher that saw up to step 2 gets the rest only.
        var cut = events.First(e => e.Progress.Steps.Any(s => s.Step >= 2));
        var rest = await ReadEvents(owner, jobId, cut.Id);
        Assert.Equal(steps.Where(s => s > cut.Progress.Steps[^1].Step), rest.SelectMany(e => e.Progress.Steps).Select(s => s.Step));
        Assert.Contains("Last-Event-ID", await ApiFixture.Problem(await owner.SendAsync(WatchRequest(jobId, "yesterday")), HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task Health_is_open_and_metrics_are_for_admins_and_count_committed_steps()
    {
        using var anonymous = api.As(null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/live")).StatusCode);
        var ready = await anonymous.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("Healthy", await ready.Content.ReadAsStringAsync());
        await ApiFixture.Problem(await anonymous.GetAsync("/metrics"), HttpStatusCode.Unauthorized);
        using var user = api.As((await api.KeyFor("team-metrics")).Key);
        await ApiFixture.Problem(await user.GetAsync("/metrics"), HttpStatusCode.Forbidden);

        var jobId = await Submit(user, TestSpecs.Tiny(steps: 3), null);
        await api.Cluster.Finish(jobId);
        using var admin = api.As(ApiFixture.AdminKey);
        var metrics = await admin.GetStringAsync("/metrics");
        // A sample line: name{labels} value [timestamp].
        string Value(string metric)
        {
            var line = Assert.Single(metrics.Split('\n'), l => l.StartsWith(metric + "{", StringComparison.Ordinal) && l.Contains($"job=\"{jobId}\""));
            return line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0];
        }
        Assert.Equal("3", Value("elastic_steps_total"));
        Assert.Equal("3", Value("elastic_step_duration_seconds_count"));
        Assert.Contains("http_server_request_duration_seconds", metrics);
        // The scheduler's gauges, from the silo that hosts the capacity grain.
        Assert.Contains("elastic_queue_length", metrics);
        Assert.Contains("elastic_devices_in_use", metrics);
    }

    [Fact]
    public async Task The_cluster_view_lists_silos_and_devices()
    {
        using var user = api.As((await api.KeyFor("team-look")).Key);
        var cluster = await user.GetFromJsonAsync<ClusterView>("/api/v1/cluster", ApiJson.Options);
        Assert.Equal(2, cluster!.Devices);
        Assert.Equal(api.Cluster.Cluster.Silos[0].SiloAddress, Assert.Single(cluster.Silos).Silo);
    }

    /// <summary>Cancels an endless job when the test ends, however it ends: a failed test must not keep the fixture's devices.</summary>
    private sealed class CancelAtEnd(ApiFixture api, string jobId) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await api.Cluster.Client.CancelAsync(jobId);
            }
            catch (JobStateException)
            {
                // Already ended.
            }
            await api.Cluster.Finish(jobId);
        }
    }

    /// <summary>Every request on one job: {0} is the job id.</summary>
    private static IEnumerable<(string Method, string Path, HttpContent? Body)> JobRequests =>
    [
        ("GET", "/api/v1/jobs/{0}", null), ("GET", "/api/v1/jobs/{0}/watch", null), ("GET", "/api/v1/jobs/{0}/report", null),
        ("POST", "/api/v1/jobs/{0}/cancel", null), ("POST", "/api/v1/jobs/{0}/checkpoint", null),
        ("POST", "/api/v1/jobs/{0}/resume", JsonContent.Create(new ResumeRequest())), ("POST", "/api/v1/jobs/{0}/replan", JsonContent.Create(new ReplanRequest("dp=2"))),
        ("POST", "/api/v1/jobs/{0}/export", JsonContent.Create(new ExportRequest())),
    ];

    private static async Task<HttpResponseMessage> Post(HttpClient client, TrainingSpec spec, string? idempotencyKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/jobs") { Content = new StringContent(SpecJson.Serialize(spec), Encoding.UTF8, "application/json") };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        return await client.SendAsync(request);
    }

    private static async Task<string> Submit(HttpClient client, TrainingSpec spec, string? idempotencyKey)
    {
        var response = await Post(client, spec, idempotencyKey);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var jobId = (await response.Content.ReadFromJsonAsync<SubmittedJob>(ApiJson.Options))!.JobId;
        Assert.Equal($"/api/v1/jobs/{jobId}", response.Headers.Location?.ToString());
        return jobId;
    }

    private async Task<List<JobEvent>> EventsSoFar(string jobId) =>
        (await api.Cluster.Cluster.Client.GetGrain<IJobGrain>(jobId).WaitForProgress(long.MaxValue, 0, TimeSpan.Zero))!.Events.ToList();

    private static HttpRequestMessage WatchRequest(string jobId, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/jobs/{jobId}/watch");
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        return request;
    }

    /// <summary>Reads the whole event stream of a job (it ends when the job does).</summary>
    private static async Task<List<(string Id, JobProgress Progress)>> ReadEvents(HttpClient client, string jobId, string? lastEventId)
    {
        using var response = await client.SendAsync(WatchRequest(jobId, lastEventId), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<(string, JobProgress)>();
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            Assert.Equal("progress", item.EventType);
            events.Add((item.EventId!, JsonSerializer.Deserialize<JobProgress>(item.Data, ApiJson.Options)!));
        }
        return events;
    }
}
