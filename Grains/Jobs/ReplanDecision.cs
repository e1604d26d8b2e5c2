using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs;

/// <summary>
/// What a re-plan does with the state its holders have, given the devices of the new plan (pure; the job grain carries
/// it out). A new replica whose devices are exactly a holder's, in the same rank order, adopts that state where it lies
/// (only when the replicas keep their shape, pp x tp: a device then keeps its stage and tensor rank). Every other new replica receives its regions over the data plane from all holders at the furthest step: kept
/// replicas serve from their live state, holders that leave the plan stage theirs in host memory first and serve from
/// there (holders on leaving devices only when nothing else has the state); state a failed attempt parked on devices that
/// no new replica adopts is unparked first (a unit takes it off the devices into host memory: <see cref="Unpark"/>), and the
/// decision is made again with the holders that could not be unparked counted lost. When no holder that can deliver answered,
/// <see cref="SourceSteps"/> is null and the state comes from the latest checkpoint. Under ZeRO the holders' optimizer
/// state is partitioned: each holder has a part no other has, so all of them serve, and when one is lost or behind the
/// state is incomplete (<see cref="PartLost"/>) and comes from the checkpoint too. Under expert parallelism each holder hosts
/// one part of the experts (which several replicas may share): a new replica adopts only a holder of its own part, all
/// holders serve, and when no holder of some part is left the state comes from the checkpoint.
/// </summary>
/// <param name="SourceSteps">The furthest step any deliverable holder reached; null when none answered.</param>
/// <param name="AdoptedFrom">Per new replica, the holder whose state it adopts on its devices, or -1.</param>
/// <param name="HandOver">Live holders that leave their state on their devices for the new replica there.</param>
/// <param name="Stage">Live holders that copy their state to host memory and give their devices back, to serve.</param>
/// <param name="Unpark">Parked holders that no new replica adopts and that must serve: the job unparks them, then decides again.</param>
/// <param name="Staged">Holders (staged before or now) that serve from host memory.</param>
/// <param name="KeptSources">New replicas that adopted the state at <see cref="SourceSteps"/>: they serve from their devices.</param>
/// <param name="Needy">New replicas that receive the state.</param>
/// <param name="Release">Live or staged holders with no part in the new plan.</param>
/// <param name="PartLost">The holders' state was partitioned and a part was lost with its holder (or is behind).</param>
public sealed record ReplanDecision(
    long? SourceSteps,
    IReadOnlyList<int> AdoptedFrom,
    IReadOnlyList<int> HandOver,
    IReadOnlyList<int> Stage,
    IReadOnlyList<int> Unpark,
    IReadOnlyList<int> Staged,
    IReadOnlyList<int> KeptSources,
    IReadOnlyList<int> Needy,
    IReadOnlyList<int> Release,
    bool PartLost = false)
{
    /// <param name="replicaSize">Devices per new replica: pp x tp.</param>
    /// <param name="sameShape">Whether the new replicas have the holders' pp and tp (and, under ZeRO, the holders' part of the optimizer).</param>
    /// <param name="partitioned">Whether the holders' optimizer state is split among them (ZeRO over more than one replica).</param>
    /// <param name="experts">The expert-parallel degree of the holders' plan and of the new one (new replica n hosts part n mod New).</param>
    /// <param name="floor">The step of the newest checkpoint within the committed steps: a holder behind it does not deliver (units
    /// prepared but never given the state, left so by a coordinator that stepped down, answer at step 0; found by the chaos soak,
    /// which lost 110 steps keeping them), and when none is as far the state comes from that checkpoint.</param>
    /// <param name="ceiling">The committed steps: a holder past them does not deliver either, since nothing could commit the steps
    /// between (state a lost coordinator parked after steps it never recorded, whose units' results went with them).</param>
    public static ReplanDecision Make(IReadOnlyList<StateHolder> holders, IReadOnlyList<DeviceSlot> devices, int replicaSize, bool sameShape = true,
        bool partitioned = false, (int Old, int New)? experts = null, long floor = 0, long ceiling = long.MaxValue)
    {
        var (oldParts, newParts) = experts ?? (1, 1);
        if (replicaSize < 1 || devices.Count % replicaSize != 0)
            throw new ArgumentException($"{devices.Count} device(s) are not whole replicas of {replicaSize}", nameof(devices));
        var groups = devices.Chunk(replicaSize).ToList();
        var adoptedFrom = groups.Select(_ => -1).ToArray();
        for (var n = 0; n < groups.Count && sameShape; n++)
            adoptedFrom[n] = Enumerable.Range(0, holders.Count).FirstOrDefault(h => holders[h] is { Alive: true, Kind: not HolderKind.Staged } holder
                && holder.Devices.SequenceEqual(groups[n]) && !adoptedFrom.Contains(h) && (oldParts == 1 || (oldParts == newParts && holder.ExpertPart == n % newParts)), -1);
        var kept = adoptedFrom.Where(h => h >= 0).ToHashSet();
        var deliverable = Enumerable.Range(0, holders.Count).Where(h => holders[h].Steps >= floor && holders[h].Steps <= ceiling).ToList();
        long? source = deliverable.Count > 0 ? deliverable.Max(h => holders[h].Steps!.Value) : null;
        var partLost = source is not null && ((partitioned && holders.Any(h => h.Steps != source))
            || deliverable.Where(h => holders[h].Steps == source).Select(h => holders[h].ExpertPart).Distinct().Count() < oldParts);
        if (partLost) source = null;
        var needy = source is null ? [] : Enumerable.Range(0, groups.Count).Where(n => adoptedFrom[n] < 0 || holders[adoptedFrom[n]].Steps != source).ToList();
        var keptSources = Enumerable.Range(0, groups.Count).Where(n => adoptedFrom[n] >= 0 && holders[adoptedFrom[n]].Steps == source).ToList();
        var candidates = deliverable.Where(h => !kept.Contains(h) && holders[h].Steps == source).ToList();
        var staying = candidates.Where(h => !holders[h].Leaving).ToList();
        List<int> staged = needy.Count == 0 ? [] : partitioned || oldParts > 1 || keptSources.Count + staying.Count == 0 ? candidates : staying;
        return new ReplanDecision(source, adoptedFrom,
            HandOver: kept.Where(h => holders[h].Kind == HolderKind.Live).Order().ToList(),
            Stage: staged.Where(h => holders[h].Kind == HolderKind.Live).ToList(),
            Unpark: staged.Where(h => holders[h].Kind == HolderKind.Parked).ToList(),
            Staged: staged,
            KeptSources: keptSources,
            Needy: needy,
            Release: Enumerable.Range(0, holders.Count)
                .Where(h => holders[h].Alive && holders[h].Kind != HolderKind.Parked && !kept.Contains(h) && !staged.Contains(h)).ToList(),
            partLost);
    }
}
