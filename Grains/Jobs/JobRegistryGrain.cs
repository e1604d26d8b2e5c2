using Elastic.GrainInterfaces;
using Elastic.Grains.Placement;
using Elastic.Grains.Scheduling;
using Elastic.Grains.Telemetry;
using Elastic.Jobs;
using Microsoft.Extensions.Options;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Admits jobs. Validation lists every error and, on rejection, nothing is written and no job grain is
/// activated. Submissions are serialized (the grain is not reentrant), so an idempotency key maps to at most one job.
/// </summary>
[OnDemandPlacement]
public sealed class JobRegistryGrain(
    [PersistentState("registry", StorageNames.Jobs)] IPersistentState<RegistryRecord> registry,
    IOptions<AdmissionOptions> admission,
    IOptions<SchedulingOptions> scheduling) : Grain, IJobRegistryGrain
{
    public async Task<SubmitResult> Submit(TrainingSpec spec, string idempotencyKey, string tenant)
    {
        using var span = ElasticTelemetry.Traces.StartActivity("submit");
        span?.SetTag("tenant", tenant).SetTag("job.name", spec.Name);
        var inventory = await GrainFactory.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey).GetInventory();
        // Reading the data and starting weights to check them is file work: off the grain scheduler.
        var (resolved, errors) = await Task.Run(() => JobAdmission.Admit(spec, admission.Value, inventory));
        spec = resolved;
        if (string.IsNullOrWhiteSpace(idempotencyKey) || idempotencyKey.Length > 200)
            errors.Add(new SpecError("idempotencyKey", idempotencyKey, "must be 1 to 200 characters"));
        if (Tenants.Problem(tenant) is { } problem) errors.Add(new SpecError("tenant", tenant, problem));
        else if (errors.Count == 0) errors.AddRange(JobAdmission.QuotaProblems(spec, tenant, scheduling.Value));
        if (errors.Count > 0) return new SubmitResult(null, errors, null);

        var specJson = SpecJson.Serialize(spec);
        // A tenant name has no '/': the same key from two tenants is two keys.
        var key = $"{tenant}/{idempotencyKey}";
        if (registry.State.ByKey.TryGetValue(key, out var admitted))
        {
            if (admitted.SpecJson != specJson)
                return new SubmitResult(null, [], $"idempotency key '{idempotencyKey}' was used for job {admitted.JobId} with a different spec");
        }
        else
        {
            admitted = new Admission(NewJobId(spec.Name), specJson);
            registry.State.ByKey[key] = admitted;
            registry.State.Jobs.Add(admitted.JobId);
            await registry.WriteStateAsync();
        }
        // Start is idempotent, so a retry after a failure here still starts the job.
        await GrainFactory.GetGrain<IJobGrain>(admitted.JobId).Start(spec, DateTimeOffset.UtcNow, tenant);
        return SubmitResult.Accepted(admitted.JobId);
    }

    public async Task<IReadOnlyList<JobStatus>> List()
    {
        var statuses = await Task.WhenAll(registry.State.Jobs.Select(id => GrainFactory.GetGrain<IJobGrain>(id).GetStatus()));
        return statuses.OfType<JobStatus>().ToList();
    }

    private static string NewJobId(string name)
    {
        var safe = new string(name.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray()).Trim('-');
        return $"{(safe.Length == 0 ? "job" : safe[..Math.Min(safe.Length, 40)])}-{Guid.NewGuid().ToString("N")[..8]}";
    }
}
