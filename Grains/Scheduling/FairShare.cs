using Elastic.GrainInterfaces;

namespace Elastic.Grains.Scheduling;

/// <summary>
/// The scheduling policy (pure: the capacity grain feeds it claims and the device count, and applies its caps).
/// <list type="number">
/// <item>Jobs are ordered by priority (higher first), then submission time (earlier first), then id.</item>
/// <item>Queued jobs are served in that order. One may take the free devices and the devices that running jobs of a
/// strictly lower priority hold above their minimum width (the lowest priority and newest give first, each down to a
/// width it accepts, never below its devices.min): those jobs shrink at their next step boundary (0 steps lost).</item>
/// <item>A queued job that cannot start even so blocks the jobs queued behind it (no backfill: a large job is not starved
/// by smaller ones), but not the running jobs, which may still grow into free devices (they give them back when it can start).</item>
/// <item>A tenant's jobs never hold more than its quota together; a job held back by its own tenant's quota blocks no one,
/// nor does one that needs more devices than the cluster has (it waits for the cluster to grow).</item>
/// <item>Running jobs, in order, grow into what is left free (they grow back when the job they yielded to ends).</item>
/// </list>
/// Jobs of the same priority never shrink each other: first come, first served.
/// </summary>
public static class FairShare
{
    public static IReadOnlyList<JobShare> Decide(int devices, IReadOnlyList<JobClaim> claims, SchedulingOptions options)
    {
        var order = claims.OrderByDescending(c => c.Standing.Priority).ThenBy(c => c.Standing.SubmittedAt).ThenBy(c => c.JobId, StringComparer.Ordinal).ToList();
        var running = order.Where(c => !c.Waiting).ToList();
        // What each running job keeps after yielding (it starts as what it holds), and what each tenant's jobs hold.
        var keeps = running.ToDictionary(c => c.JobId, c => c.Held);
        var tenants = running.GroupBy(c => c.Standing.Tenant).ToDictionary(g => g.Key, g => g.Sum(c => c.Held));
        var caps = new Dictionary<string, int>();
        var notes = new Dictionary<string, string>();
        var positions = new Dictionary<string, int>();
        // Who each lender gives to; how much is known after growth (a lender gives whole widths and may take back the excess).
        var yieldsTo = running.ToDictionary(c => c.JobId, _ => new List<JobClaim>());
        var free = Math.Max(0, devices - running.Sum(c => c.Held));
        int QuotaRoom(string tenant) => options.QuotaOf(tenant) is { } quota ? quota - tenants.GetValueOrDefault(tenant) : int.MaxValue;

        JobClaim? blocking = null;
        foreach (var job in order.Where(c => c.Waiting))
        {
            positions[job.JobId] = positions.Count + 1;
            caps[job.JobId] = 0;
            if (blocking is not null)
            {
                notes[job.JobId] = $"queued behind {blocking}, which waits for devices";
                continue;
            }
            // Lenders: lower-priority running jobs, the lowest priority and newest first.
            var lenders = running.Where(r => r.Standing.Priority < job.Standing.Priority).Reverse().ToList();
            var reclaimable = lenders.Sum(r => keeps[r.JobId] - r.Floor);
            var tenant = job.Standing.Tenant;
            var width = job.WidestWithin(Math.Min(free + reclaimable, QuotaRoom(tenant)));
            if (width == 0)
            {
                if (job.WidestWithin(free + reclaimable) > 0)
                    notes[job.JobId] = $"tenant {tenant} may hold {options.QuotaOf(tenant)} device(s) ({options.QuotaSetting(tenant)}) and its jobs hold {tenants.GetValueOrDefault(tenant)}";
                else if (job.Floor > devices)
                    // It waits for the cluster to grow; holding up the queue until then would stop everyone behind it.
                    notes[job.JobId] = $"needs {job.Floor} device(s): the cluster has {devices}";
                else
                {
                    notes[job.JobId] = $"needs {job.Floor} device(s): {free} free and {reclaimable} held above their minimum by lower-priority jobs";
                    blocking = job;
                }
                continue;
            }
            caps[job.JobId] = width;
            tenants[tenant] = tenants.GetValueOrDefault(tenant) + width;
            var need = width - free;
            free = Math.Max(0, free - width);
            foreach (var lender in lenders.TakeWhile(_ => need > 0))
            {
                var keep = lender.WidestWithin(Math.Max(keeps[lender.JobId] - need, lender.Floor));
                var given = keeps[lender.JobId] - keep;
                if (given <= 0) continue;
                keeps[lender.JobId] = keep;
                tenants[lender.Standing.Tenant] -= given;
                need -= given;
                yieldsTo[lender.JobId].Add(job);
            }
            // A lender gives whole widths: what it gave beyond the need is free again.
            free += Math.Max(0, -need);
        }

        foreach (var job in running)
        {
            var keep = keeps[job.JobId];
            var cap = Math.Max(keep, job.WidestWithin(keep + Math.Min(free, Math.Max(0, QuotaRoom(job.Standing.Tenant)))));
            free -= cap - keep;
            tenants[job.Standing.Tenant] += cap - keep;
            caps[job.JobId] = cap;
            if (yieldsTo[job.JobId].Count > 0 && cap < job.Held) notes[job.JobId] = $"yields {job.Held - cap} device(s) to {string.Join(" and ", yieldsTo[job.JobId])}";
        }
        foreach (var job in order.Where(c => c.Waiting && caps[c.JobId] > 0))
        {
            var lenders = running.Where(r => yieldsTo[r.JobId].Contains(job) && caps[r.JobId] < r.Held).Select(r => $"{r} shrinks from {r.Held} to {caps[r.JobId]} device(s)").ToList();
            if (lenders.Count > 0) notes[job.JobId] = $"{string.Join(" and ", lenders)} to make room";
        }
        return order.Select(c => new JobShare(c.JobId, c.Standing, c.Held, caps[c.JobId], positions.TryGetValue(c.JobId, out var p) ? p : null, notes.GetValueOrDefault(c.JobId))).ToList();
    }
}
