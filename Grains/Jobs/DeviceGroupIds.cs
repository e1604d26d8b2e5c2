using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs;

/// <summary>
/// The NCCL ids of a plan's groups that span GPUs of several processes, and what the job's event says of them. Every silo of
/// those groups is asked first whether it has NCCL: an id drawn for a group that never joins would leave its bootstrap
/// waiting in the drawing process. Then each id is drawn on the silo of its group's first rank. A silo without NCCL, or one
/// that does not answer, leaves its groups on frames: the job still runs.
/// </summary>
public static class DeviceGroupIds
{
    public static async Task<(IReadOnlyDictionary<string, byte[]>? Ids, string? Event)> DrawAsync(IGrainFactory grains, string jobId, ParallelPlan plan)
    {
        var groups = plan.DeviceGroupsAcrossProcesses();
        if (groups.Count == 0) return (null, null);
        SiloAddress SiloOf(int rank) => plan.Devices[rank].Silo;
        IDeviceGroupIdGrain On(SiloAddress silo) => grains.GetGrain<IDeviceGroupIdGrain>(DeviceKey.Of($"{jobId}/g{plan.Generation}/device-ids", silo));

        var silos = groups.SelectMany(g => g.Ranks).Select(SiloOf).Distinct().ToList();
        var asked = await Answers(silos, s => On(s).Draw(0));
        var without = asked.Where(a => a.Value.Answer is not { Nccl: true }).ToDictionary(a => a.Key, a => a.Value.Why);
        var drawing = groups.Where(g => g.Ranks.All(r => !without.ContainsKey(SiloOf(r)))).GroupBy(g => SiloOf(g.Ranks[0])).ToDictionary(d => d.Key, d => d.ToList());
        var drawn = await Answers([.. drawing.Keys], s => On(s).Draw(drawing[s].Count));

        var ids = new Dictionary<string, byte[]>();
        foreach (var (silo, ofSilo) in drawing)
        {
            if (drawn[silo].Answer is { } answer && answer.Ids.Count == ofSilo.Count)
                foreach (var (group, id) in ofSilo.Zip(answer.Ids)) ids[group.Name] = id;
            else without[silo] = drawn[silo].Why;
        }
        var over = ids.Count > 0 ? $"{string.Join(", ", drawn.Values.Select(d => d.Answer?.Transport).OfType<string>().Distinct())} in {ids.Count} of {groups.Count} group(s) where every rank joins it" : "frames on the data plane";
        var frames = ids.Count < groups.Count ? $"; frames in {groups.Count - ids.Count} group(s): {string.Join("; ", without.Select(w => $"silo {w.Key} {w.Value}"))}" : "";
        return (ids.Count > 0 ? ids : null, $"generation {plan.Generation}: tensors between processes go over {over}{frames}");
    }

    /// <summary>Each silo's answer, or why there is none (what it carries tensors over instead, or that it did not answer).</summary>
    private static async Task<Dictionary<SiloAddress, (DrawnDeviceGroupIds? Answer, string Why)>> Answers(IReadOnlyList<SiloAddress> silos, Func<SiloAddress, Task<DrawnDeviceGroupIds>> ask)
    {
        var calls = silos.Select(ask).ToList();
        try
        {
            await Task.WhenAll(calls);
        }
        catch
        {
            // Read one by one below.
        }
        return silos.Zip(calls).ToDictionary(c => c.First, c => c.Second.IsCompletedSuccessfully
            ? (c.Second.Result, c.Second.Result.Nccl ? "" : $"has {c.Second.Result.Transport}")
            : ((DrawnDeviceGroupIds?)null, $"did not answer ({c.Second.Exception?.GetBaseException().Message})"));
    }
}
