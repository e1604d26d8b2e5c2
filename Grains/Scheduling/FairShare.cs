using Elastic.GrainInterfaces;

namespace Elastic.Grains.Scheduling;

/// <summary>
/// The scheduling policy (pure: the capacity grain feeds it claims and the device count, and applies its caps).
/// <list type="number">
/// <item>Jobs are ordered by priority (higher first), then submission time (earlier first), then id.</item>
/// <item>Queued jobs are served in that order. One may take the free devices and the devices that running jobs of a
/// strictly lower priority hold above their minimum width (the lowest priority and newest give first, each down to a
/// width it accepts, never below its devices.min): those jobs shrink at their next step boundary (0 steps lost).</item>
/// <item>Jobs of one priority share what the higher priorities leave: each tenant in proportion to its quota (a tenant
/// without one weighs as the whole cluster), its jobs alike, max-min fair (what a job cannot use goes to the others), as
/// Kueue's fair sharing and YARN's fair scheduler do. A queued
/// job may also take, up to its share, what running jobs of its priority hold above their own share (never below their
/// devices.min); a running job below its share takes from equals above theirs the same way.</item>
/// <item>A queued job that cannot start even so blocks the jobs queued behind it (no backfill: a large job is not starved
/// by smaller ones), but not the running jobs, which may still grow into free devices (they give them back when it can start).</item>
/// <item>A tenant's jobs never hold more than its quota together; a job held back by its own tenant's quota blocks no one,
/// nor does one that needs more devices than the cluster has (it waits for the cluster to grow).</item>
/// <item>Running jobs, in order, grow into what is left free (they grow back when the job they yielded to ends).</item>
/// </list>
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
        var shares = Shares(devices, order, options);
        // The width a job keeps when equals take its excess: its share, never below its minimum.
        int FairKeep(JobClaim c) => Math.Max(c.Floor, c.WidestWithin((int)shares[c.JobId]));
        // What a running job can give to a taker: down to its minimum to a higher priority, down to its share to an equal.
        int Spare(JobClaim lender, JobClaim taker) => lender.Standing.Priority < taker.Standing.Priority ? keeps[lender.JobId] - lender.Floor
            : lender.Standing.Priority == taker.Standing.Priority && lender != taker ? Math.Max(0, keeps[lender.JobId] - FairKeep(lender)) : 0;
        // Gives <paramref name="need"/> devices to the taker from its lenders in order; returns what is still needed (negative: given beyond it).
        int Borrow(JobClaim taker, IEnumerable<JobClaim> lenders, int need)
        {
            foreach (var lender in lenders.TakeWhile(_ => need > 0))
            {
                var spare = Spare(lender, taker);
                if (spare <= 0) continue;
                var keep = lender.WidestWithin(Math.Max(keeps[lender.JobId] - need, keeps[lender.JobId] - spare));
                var given = keeps[lender.JobId] - keep;
                if (given <= 0) continue;
                keeps[lender.JobId] = keep;
                tenants[lender.Standing.Tenant] -= given;
                need -= given;
                yieldsTo[lender.JobId].Add(taker);
            }
            return need;
        }
        // Lenders to a taker: lower priorities (the lowest and newest first), then its equals (the newest first).
        List<JobClaim> LendersTo(JobClaim taker) =>
            [.. running.Where(r => r.Standing.Priority < taker.Standing.Priority).Reverse(), .. running.Where(r => r.Standing.Priority == taker.Standing.Priority && r != taker).Reverse()];

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
            var lenders = LendersTo(job);
            var reclaimable = lenders.Where(r => r.Standing.Priority < job.Standing.Priority).Sum(r => Spare(r, job));
            var fromEquals = lenders.Where(r => r.Standing.Priority == job.Standing.Priority).Sum(r => Spare(r, job));
            var tenant = job.Standing.Tenant;
            // From equals it takes only up to its own share.
            var reach = Math.Max(free + reclaimable, Math.Min(free + reclaimable + fromEquals, (int)shares[job.JobId]));
            var width = job.WidestWithin(Math.Min(reach, QuotaRoom(tenant)));
            if (width == 0)
            {
                if (job.WidestWithin(reach) > 0)
                    notes[job.JobId] = $"tenant {tenant} may hold {options.QuotaOf(tenant)} device(s) ({options.QuotaSetting(tenant)}) and its jobs hold {tenants.GetValueOrDefault(tenant)}";
                else if (job.Floor > devices)
                    // It waits for the cluster to grow; holding up the queue until then would stop everyone behind it.
                    notes[job.JobId] = $"needs {job.Floor} device(s): the cluster has {devices}";
                else
                {
                    notes[job.JobId] = $"needs {job.Floor} device(s): {free} free, {reclaimable} held above their minimum by lower-priority jobs"
                        + $" and {Math.Min(fromEquals, Math.Max(0, (int)shares[job.JobId] - free - reclaimable))} that jobs of its priority hold above their share";
                    blocking = job;
                }
                continue;
            }
            caps[job.JobId] = width;
            tenants[tenant] = tenants.GetValueOrDefault(tenant) + width;
            var need = Borrow(job, lenders, width - free);
            free = Math.Max(0, free - width);
            // A lender gives whole widths: what it gave beyond the need is free again.
            free += Math.Max(0, -need);
        }

        // Running jobs below their share take the free devices and, for the rest, what equals hold above their share.
        foreach (var job in running)
        {
            var held = keeps[job.JobId];
            var target = job.WidestWithin((int)Math.Min((long)shares[job.JobId], held + (long)Math.Max(0, QuotaRoom(job.Standing.Tenant))));
            var fromFree = Math.Min(free, Math.Max(0, target - held));
            var need = target - held - fromFree;
            var equals = running.Where(r => r.Standing.Priority == job.Standing.Priority && r != job).Reverse().ToList();
            if (need <= 0 || equals.Sum(r => Spare(r, job)) < need) continue;
            free += Math.Max(0, -Borrow(job, equals, need)) - fromFree;
            keeps[job.JobId] = target;
            tenants[job.Standing.Tenant] += target - held;
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

    /// <summary>
    /// Each job's fair share: the devices its priority level has (all, less what running jobs of higher priorities hold), split
    /// among the level's jobs by weight (the tenant's quota, the whole cluster for a tenant without one, shared alike by the
    /// tenant's jobs there) and max-min fair: a job that accepts no more than its part keeps only its widest width, and what
    /// it leaves goes to the others by weight (weighted water-filling). Jobs that could never start (wider than the cluster)
    /// take no part.
    /// </summary>
    private static Dictionary<string, double> Shares(int devices, IReadOnlyList<JobClaim> order, SchedulingOptions options)
    {
        var shares = new Dictionary<string, double>();
        var above = 0;
        foreach (var level in order.GroupBy(c => c.Standing.Priority))
        {
            var members = level.Where(c => c.Floor <= devices).ToList();
            var perTenant = members.GroupBy(c => c.Standing.Tenant).ToDictionary(t => t.Key, t => t.Count());
            var weight = members.ToDictionary(c => c.JobId, c => Math.Max(1, options.QuotaOf(c.Standing.Tenant) ?? devices) / (double)perTenant[c.Standing.Tenant]);
            var left = (double)Math.Max(0, devices - above);
            var open = members.ToList();
            while (open.Count > 0)
            {
                var total = open.Sum(c => weight[c.JobId]);
                var satisfied = open.Where(c => c.Widths.DefaultIfEmpty(c.Held).Max() <= left * weight[c.JobId] / total).ToList();
                if (satisfied.Count == 0)
                {
                    foreach (var job in open) shares[job.JobId] = left * weight[job.JobId] / total;
                    break;
                }
                foreach (var job in satisfied)
                {
                    shares[job.JobId] = job.Widths.DefaultIfEmpty(job.Held).Max();
                    left -= shares[job.JobId];
                    open.Remove(job);
                }
            }
            foreach (var job in level.Where(c => c.Floor > devices)) shares[job.JobId] = 0;
            above += level.Where(c => !c.Waiting).Sum(c => c.Held);
        }
        return shares;
    }
}
