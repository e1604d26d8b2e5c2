using System.Globalization;
using Elastic.GrainInterfaces;
using Elastic.Grains.Devices;
using Elastic.Grains.Jobs;
using Elastic.Grains.Placement;
using Elastic.Grains.Scheduling;
using Elastic.Grains.Telemetry;
using Microsoft.Extensions.Options;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Elastic.Grains.Capacity;

/// <summary>
/// The cluster's device inventory, rebuilt on every call from membership (active silos only) and silo
/// metadata, the allocation of devices to jobs, the silos that are draining, and the scheduler's queue: every allocation
/// is capped by the job's fair share (<see cref="FairShare"/>). Allocations on silos that left are dropped.
/// Allocations, drains and claims are persisted, so that when this grain's silo goes the next activation knows who holds what.
/// </summary>
[OnDemandPlacement]
public sealed class CapacityGrain(
    [PersistentState("capacity", StorageNames.Jobs)] IPersistentState<CapacityRecord> record,
    IClusterMembershipService membership,
    ISiloMetadataCache metadata,
    IOptions<SchedulingOptions> scheduling,
    TimeProvider time) : Grain, ICapacityGrain
{
    private readonly CapacityRecordWriter _writer = new(record, time);
    private Dictionary<string, List<DeviceSlot>> Allocations => record.State.Held;
    private Dictionary<string, Drain> Draining => record.State.Draining;
    private Dictionary<string, Claim> Claims => record.State.Claims;

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        ElasticTelemetry.Scheduler.Clear();
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<SiloInventory>> GetInventory()
    {
        var inventory = Silos().ToList();
        var inUse = Held().GroupBy(d => d.Silo).ToDictionary(g => g.Key, g => g.Count());
        return Task.FromResult<IReadOnlyList<SiloInventory>>(inventory
            .Select(s => s with { DevicesInUse = inUse.GetValueOrDefault(s.Silo) })
            .ToList());
    }

    public async Task<Allocation> Allocate(AllocationRequest request)
    {
        Claims[request.JobId] = new Claim(request.Standing, request.Widths, time.GetUtcNow());
        var share = ShareOf(request.JobId);
        Allocations.Remove(request.JobId, out var before);
        var usable = Usable(request.Exclude);
        var preferred = request.Prefer.Where(usable.Contains).Distinct().ToList();
        // Then fill the silos with the most free devices first: fewer silos means more replicas linked in memory.
        var others = usable.Except(preferred).GroupBy(d => d.Silo).OrderByDescending(g => g.Count()).SelectMany(g => g).ToList();
        var blocks = TensorBlocks.Of(preferred.Concat(others), request.TensorParallel);
        var width = request.Widths.Where(w => w <= blocks.Count * request.TensorParallel && w <= share.Cap).DefaultIfEmpty(0).Max();
        var slots = blocks.Take(width / request.TensorParallel).SelectMany(b => b).ToList();
        if (width > 0) Allocations[request.JobId] = slots;
        else if (request.KeepWhenShort && before is not null) Allocations[request.JobId] = before;
        if (request.Serving is { Count: > 0 } serving) record.State.Serving[request.JobId] = serving.Select(d => d.Silo.ToParsableString()).Distinct().ToList();
        await _writer.WriteAsync();
        return new Allocation(slots, share);
    }

    public async Task<CapacityReview> Review(string jobId, JobStanding standing, IReadOnlyList<int> widths, IReadOnlyList<DeviceSlot> held)
    {
        var changed = record.State.Serving.ContainsKey(jobId);
        if (Claims.GetValueOrDefault(jobId) is not { } claim || claim.Standing != standing || !claim.Widths.SequenceEqual(widths)) changed = true;
        // Asking is what keeps a claim: a job that waits for devices longer than the waiting expiry still asks at every review.
        Claims[jobId] = new Claim(standing, widths, time.GetUtcNow());
        var share = ShareOf(jobId);
        var silos = Silos().ToDictionary(s => s.Silo);
        var active = silos.Keys.ToHashSet();
        var leaving = held.Where(d => !active.Contains(d.Silo) || DrainOf(d.Silo) is not null).ToList();
        var reason = leaving.Select(d => d.Silo).Distinct()
            .Select(silo => DrainOf(silo) is { } why ? $"{silo} is draining ({why.Reason})" : $"{silo} left the cluster")
            .ToList();
        var kind = leaving.Select(d => !active.Contains(d.Silo) ? LeaveKind.Lost : DrainOf(d.Silo)!.Preemption ? LeaveKind.Preempted : LeaveKind.Draining)
            .DefaultIfEmpty(LeaveKind.None).Max();
        // The re-plan that asked for this review (if any) is over: its old units no longer serve.
        var served = record.State.Serving.Remove(jobId);
        // Its own devices count whether or not the job names them (units of a failed re-plan hold some it no longer lists).
        var own = held.Concat(Allocations.GetValueOrDefault(jobId) ?? []).Distinct();
        var could = Usable([]).Concat(own.Where(d => !leaving.Contains(d) && active.Contains(d.Silo) && DrainOf(d.Silo) is null)).Distinct().ToList();
        var widest = widths.Where(w => w <= could.Count && w <= share.Cap).DefaultIfEmpty(0).Max();
        var offer = could.GroupBy(d => d.Silo).Where(g => silos.ContainsKey(g.Key))
            .Select(g => new SiloOffer(g.Key, g.Count(), silos[g.Key].DeviceModel, silos[g.Key].DeviceMemoryMiB, silos[g.Key].Calibration)).ToList();
        if (changed || served) await _writer.WriteAsync();
        return new CapacityReview(leaving, reason.Count > 0 ? string.Join("; ", reason) : null, widest, kind, share.Cap < share.Held ? share.Note : null, offer, share.Cap, share);
    }

    public async Task Release(string jobId)
    {
        if (Allocations.Remove(jobId) | Claims.Remove(jobId) | record.State.Serving.Remove(jobId)) await _writer.WriteAsync();
        Schedule();
    }

    public Task<IReadOnlyList<JobShare>> GetSchedule() => Task.FromResult(Schedule());

    private JobShare ShareOf(string jobId) => Schedule().Single(s => s.JobId == jobId);

    /// <summary>
    /// The fair share of every job the scheduler knows, over the devices of active silos that are not draining. A job holding
    /// devices with no claim (allocated before claims existed) keeps what it holds; a queued job that stopped asking is dropped.
    /// </summary>
    private IReadOnlyList<JobShare> Schedule()
    {
        var now = time.GetUtcNow();
        var held = HeldByJob().GroupBy(d => d.JobId).ToDictionary(g => g.Key, g => g.Count());
        foreach (var (jobId, _) in Claims.Where(c => !held.ContainsKey(c.Key) && now - c.Value.LastAsked > scheduling.Value.WaitingExpiry).ToList())
            Claims.Remove(jobId);
        var claims = Claims.Select(c => new JobClaim(c.Key, c.Value.Standing, c.Value.Widths, held.GetValueOrDefault(c.Key)))
            .Concat(held.Where(h => !Claims.ContainsKey(h.Key)).Select(h => new JobClaim(h.Key, new JobStanding(Tenants.Default, 0, DateTimeOffset.MinValue), [h.Value], h.Value)))
            .ToList();
        var devices = Silos().Where(s => DrainOf(s.Silo) is null).Sum(s => s.Devices);
        var shares = FairShare.Decide(devices, claims, scheduling.Value);
        ElasticTelemetry.Scheduler.Publish(shares.Count(s => s.Position is not null), held.Values.Sum(), devices);
        return shares;
    }

    public async Task Drain(SiloAddress silo, string reason, bool preemption)
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        foreach (var gone in Draining.Keys.Where(d => !active.Contains(SiloAddress.FromParsableString(d))).ToList()) Draining.Remove(gone);
        Draining[silo.ToParsableString()] = new Drain(reason, preemption);
        await _writer.WriteAsync();
    }

    public Task<IReadOnlyList<string>> HoldingJobs() => Task.FromResult<IReadOnlyList<string>>(Allocations.Keys.ToList());

    public Task<int> JobsOn(SiloAddress silo) =>
        Task.FromResult(Allocations.Where(job => job.Value.Any(d => d.Silo.Equals(silo))).Select(job => job.Key)
            .Union(record.State.Serving.Where(job => job.Value.Contains(silo.ToParsableString())).Select(job => job.Key)).Count());

    private Drain? DrainOf(SiloAddress silo) => Draining.GetValueOrDefault(silo.ToParsableString());

    /// <summary>Free devices on active silos that are neither draining nor excluded.</summary>
    private HashSet<DeviceSlot> Usable(IReadOnlyList<SiloAddress> exclude)
    {
        var taken = Held().ToHashSet();
        return Silos().Where(s => DrainOf(s.Silo) is null && !exclude.Contains(s.Silo))
            .SelectMany(s => Enumerable.Range(0, s.Devices).Select(d => new DeviceSlot(s.Silo, d, s.DataPlane, s.DeviceModel)))
            .Where(d => !taken.Contains(d))
            .ToHashSet();
    }

    private IEnumerable<DeviceSlot> Held() => HeldByJob().Select(d => d.Device);

    private IEnumerable<(string JobId, DeviceSlot Device)> HeldByJob()
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        return Allocations.SelectMany(a => a.Value.Select(d => (a.Key, d))).Where(d => active.Contains(d.d.Silo));
    }

    private IEnumerable<SiloInventory> Silos()
    {
        foreach (var member in membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).OrderBy(m => m.SiloAddress.ToParsableString(), StringComparer.Ordinal))
        {
            var values = metadata.GetSiloMetadata(member.SiloAddress).Metadata;
            if (!values.TryGetValue(SiloMetadataKeys.DataPlane, out var dataPlane)) continue;
            yield return new SiloInventory(member.SiloAddress, member.Name,
                values.GetValueOrDefault(SiloMetadataKeys.DeviceKind, "cpu"),
                Number(values, SiloMetadataKeys.Devices), 0,
                Number(values, SiloMetadataKeys.DeviceMemoryMiB),
                (int)Number(values, SiloMetadataKeys.ThreadsPerDevice),
                dataPlane,
                values.GetValueOrDefault(SiloMetadataKeys.DeviceModel, "cpu"),
                values.GetValueOrDefault(SiloMetadataKeys.Spot) == "true",
                values.GetValueOrDefault(SiloMetadataKeys.Calibration, ""),
                values.GetValueOrDefault(SiloMetadataKeys.DeviceTransport, ""));
        }
    }

    private static int Number(IReadOnlyDictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
}
