using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs;

/// <summary>Calls that go to every unit of a generation at once and succeed or fail together.</summary>
public static class UnitCalls
{
    /// <summary>Awaits one call per unit (on <paramref name="devices"/>, in order); any failure throws one <see cref="JobFailure"/> naming every unit's error.</summary>
    public static Task OnAll(IReadOnlyList<DeviceSlot> devices, Task[] calls, string what) =>
        OnAll(devices, calls.Select(async c => { await c; return true; }).ToArray(), what);

    /// <summary>The parameter digest every replica of <paramref name="plan"/> holds; throws when they differ (the layout broke its promise).</summary>
    public static async Task<string> SameState(ParallelPlan plan, IReplicaGrain[] replicas, string when)
    {
        var digests = await OnAll(plan.ReplicaDevices(), replicas.Select(u => u.Digest()).ToArray(), $"the digest {when}");
        return digests.Distinct().Count() == 1
            ? digests[0]
            : throw new JobFailure($"{when} the replicas differ: {string.Join(", ", digests.Select((d, r) => $"replica {r} {d[..12]}"))}");
    }

    public static async Task<T[]> OnAll<T>(IReadOnlyList<DeviceSlot> devices, Task<T>[] calls, string what)
    {
        try
        {
            return await Task.WhenAll(calls);
        }
        catch
        {
            // A unit that refused this coordinator (its silo is dead or stopping) is no failure of the job: the coordinator steps down.
            if (calls.Select(c => c.Exception?.InnerException).OfType<CoordinatorFencedException>().FirstOrDefault() is { } fenced) throw fenced;
            var failures = calls.Select((call, r) => (call, r)).Where(c => c.call.IsFaulted)
                .Select(c => $"unit {c.r} on {devices[c.r]}: {c.call.Exception!.InnerException!.Message}");
            throw new JobFailure($"{what} failed: {string.Join("; ", failures)}", calls);
        }
    }
}
