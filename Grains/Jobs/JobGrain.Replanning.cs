using System.Diagnostics;
using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Grains.Telemetry;

namespace Elastic.Grains.Jobs;

/// <summary>Re-planning: when the job changes its layout at a step boundary, and how its state reaches the new units.</summary>
public sealed partial class JobGrain
{
    /// <summary>
    /// What holds the job's state during a re-plan: the plan's units when it begins; after an attempt failed, whatever that
    /// attempt left holding it (state parked on kept devices, staged units, new units that adopted), so the next attempt
    /// loses nothing that was safe in memory.
    /// </summary>
    private List<(IReplicaGrain? Unit, StateHolder Holder)> _holders = [];

    public async Task<JobStatus?> ChangeLayout(string plan)
    {
        if (!job.RecordExists) return null;
        if (Record.State is not (JobState.Running or JobState.Planning or JobState.Pending))
            throw new InvalidOperationException($"job {JobId} is {Record.State}; only a job that has not ended can change its layout");
        var silos = await OnCapacity(c => c.GetInventory());
        var asked = LayoutRequest.Check(plan, Record.Spec, silos.Select(s => s.Devices).DefaultIfEmpty(0).Max());
        var layout = SpecLayout.Asked(Record.Spec, Current, asked);
        Policy.Request(layout);
        Journal.Add(JobEventKinds.ReplanRequested, $"{layout} asked for; the job moves to it at the next step boundary");
        return Journal.Status();
    }

    /// <summary>At a step boundary: the re-plan the elasticity policy asks for, given what the capacity grain says.</summary>
    private async Task<ReplanChange?> CapacityChange()
    {
        var plan = Record.Plan!;
        var review = await OnCapacity(c => c.Review(JobId, Standing, Widths, plan.Devices));
        var growth = review.WidestPlan > plan.DeviceCount ? await Better(review, plan) : null;
        return Policy.Decide(review, plan, () => growth);
    }

    /// <summary>What the job last weighed growing onto: the offer (silos and counts, and its share) and the answer.</summary>
    private (string Offer, (Layout Target, string Why)? Answer)? _weighed;

    /// <summary>
    /// A layout on what the job could hold now that is worth moving to from <paramref name="plan"/>, and why; null when none is
    /// (the job says once per offer what it weighed). The same offer is weighed once.
    /// </summary>
    private async Task<(Layout Target, string Why)?> Better(CapacityReview review, ParallelPlan plan)
    {
        var offer = string.Join(";", (review.Offer ?? []).Select(o => $"{o.Silo}:{o.Devices}")) + $"|{review.Cap}|{plan.Generation}";
        if (_weighed is { } weighed && weighed.Offer == offer) return weighed.Answer;
        (Layout, string)? answer = null;
        var current = plan.ToLayout();
        if ((await Rank(review)).Choice is { } best && best.Layout != current)
        {
            var now = Chooser.Predict(current, review);
            var link = InventoryShape.Of(review.Offer ?? []) is { Devices: > 0 } shape ? shape.Weakest.InterNode.BusBandwidthGBs * 1e9 : 1e9;
            // Parameters and both AdamW moments, in fp32.
            var verdict = new MoveWeighing(options.Value.MinReplanGain, _lastPrepare).Weigh(now, best, Record.Parameters * 12.0, link,
                MoveWeighing.ExpectedStay(Record.Events.Where(e => e.Kind == JobEventKinds.Replanned).Select(e => e.Time).ToList(), options.Value.ExpectedStay));
            if (verdict.Move) answer = (best.Layout, $"{current} can become {best.Layout}: {verdict.Why}");
            else Journal.Add(JobEventKinds.ReplanDeclined, $"{current} stays rather than become {best.Layout}: {verdict.Why}");
        }
        _weighed = (offer, answer);
        return answer;
    }

    /// <summary>How long preparing the units of the last plan took: what a move is expected to cost besides moving state.</summary>
    private TimeSpan _lastPrepare = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Moves the job to a new plan at a step boundary, in a new generation (whatever the old one still had in flight is
    /// discarded). Replicas whose devices stay keep their state there; new ranks receive their regions of it over the data
    /// plane from every unit that holds the furthest step; only when no unit kept it does the job go back to its latest
    /// checkpoint (and the event says how many steps that lost). False when the devices left are below the minimum.
    /// </summary>
    private async Task<bool> Replan(ReplanChange change)
    {
        var current = Record.Plan!;
        _holders = _units.Select((u, r) => ((IReplicaGrain?)u, new StateHolder(current.ReplicaGroupOf(r), HolderKind.Live, null, Tp: current.Tp, ExpertPart: current.ExpertPartOf(r)))).ToList();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ReplanOnce(change, attempt);
            }
            catch (Exception e) when (attempt < 3 && !_cancelRequested)
            {
                Journal.Add(JobEventKinds.ReplanFailed, $"attempt {attempt}: {(e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}")}; trying again");
                change = change with { Cause = change.Cause == ReplanCause.Request ? ReplanCause.Request : ReplanCause.Failure };
            }
        }
    }

    /// <param name="attempt">1, 2, 3: each retry gives the new units longer to join (one slow to activate while the grain
    /// directory recovers from a lost silo would otherwise miss every attempt's join by the same margin).</param>
    private async Task<bool> ReplanOnce(ReplanChange change, int attempt)
    {
        using var span = ElasticTelemetry.Traces.StartActivity("replan");
        span?.SetTag("job", JobId).SetTag("cause", change.CauseName).SetTag("attempt", attempt);
        var watch = Stopwatch.StartNew();
        var old = Record.Plan!;
        await Checkpoints.Settle();

        // Who still answers, and how many steps each has taken; parked state is as far as it was when it was parked.
        var found = _holders;
        var probes = found.Select(h => h.Unit is { } unit
            ? unit.CompletedSteps().WaitAsync(options.Value.ProbeTimeout)
            : Task.FromResult(h.Holder.Steps!.Value)).ToArray();
        try
        {
            await Task.WhenAll(probes);
        }
        catch
        {
            // Units that did not answer are lost; the rest are survivors.
        }
        var holders = found.Select((h, i) => h.Holder with
        {
            Steps = probes[i].IsCompletedSuccessfully ? probes[i].Result : null,
            Leaving = h.Holder.Devices.Any(change.Leaving.Contains),
        }).ToList();
        var lost = Enumerable.Range(0, found.Count).Where(h => !holders[h].Alive).ToList();
        // A unit that is only slow still holds its device lease: tell it to let go, without waiting for it.
        _ = ReleaseQuietly(lost.Select(h => found[h].Unit).OfType<IReplicaGrain>().ToArray());
        var furthest = holders.Where(h => h.Alive).Select(h => h.Steps).Max();
        if (furthest > Committed
            && Enumerable.Range(0, found.Count).Where(h => holders[h].Steps == furthest).Select(h => found[h].Unit).OfType<IReplicaGrain>().FirstOrDefault() is { } ahead)
        {
            // Survivors finished steps this coordinator has no record of (it took over from a lost one): commit them first.
            foreach (var result in await ahead.StepResults(Committed))
                if (result.Step == Committed + 1) Journal.Commit(result.Step, [result], result.Seconds);
        }
        var committed = Committed;

        // A layout asked for (or found worth moving to) either fits now or is refused, the job going on as it is; a re-plan forced
        // by lost or leaving units takes the planner's best layout on what is left, and waits only when no layout fits.
        var refusable = change.Target is not null && lost.Count == 0;
        var alive = holders.Where(h => h.Alive).SelectMany(h => h.Devices).ToList();
        var unreachable = await UnreachableSilos(lost.Select(h => found[h]).ToList());
        var target = change.Target;
        var review = await OnCapacity(c => c.Review(JobId, Standing, Widths, alive));
        if (target is null)
        {
            var ranking = await Rank(review, unreachable);
            target = ranking.Choice?.Layout;
            if (target is null)
            {
                await WaitForCapacity(change, old, found, holders, ranking.Rejected.FirstOrDefault());
                return false;
            }
        }
        // Old units on leaving devices may have to serve the state: their silos wait for this re-plan before they stop.
        var serving = holders.Where(h => h.Alive && h.Leaving).SelectMany(h => h.Devices).ToList();
        var request = new AllocationRequest(JobId, Standing, [target.Devices], alive, unreachable, target.Tp, KeepWhenShort: refusable, Serving: serving);
        var devices = (await OnCapacity(c => c.Allocate(request))).Devices;
        if (devices.Count == 0)
        {
            if (refusable)
            {
                Journal.Add(JobEventKinds.ReplanRefused, $"{change.Detail}: {target.Devices} device(s) in groups of {target.Tp} on one silo are not free; the job goes on as {old}");
                return true;
            }
            await WaitForCapacity(change, old, found, holders, $"{target.Devices} device(s) for {target} are not free");
            return false;
        }
        var (pp, tp, zero) = (target.Pp, target.Tp, target.Zero);

        // Under ZeRO a replica's optimizer state is its part of a dp-wide partition: state is re-sharded over the data plane, never adopted.
        var partitioned = zero > 0 && devices.Count > pp * tp;
        var ep = target.Ep;
        var decision = ReplanDecision.Make(holders, devices, pp * tp,
            sameShape: pp == old.Pp && tp == old.Tp && target.VirtualStages == old.VirtualStages && !old.Partitioned && !partitioned && ep == old.Ep,
            partitioned: old.Partitioned, experts: (old.Ep, ep));
        var phases = Stopwatch.StartNew();
        await UnitCalls.OnAll(decision.Stage.Select(h => holders[h].Devices[0]).ToList(), decision.Stage.Select(h => found[h].Unit!.Stage()).ToArray(), "staging state");
        await UnitCalls.OnAll(decision.HandOver.Select(h => holders[h].Devices[0]).ToList(), decision.HandOver.Select(h => found[h].Unit!.Handover()).ToArray(), "handing state over");
        var kept = decision.AdoptedFrom.Where(h => h >= 0).ToList();
        var staged = decision.Staged.Select(h => (found[h].Unit, holders[h] with { Kind = HolderKind.Staged })).ToList();
        // Should the rest of this attempt fail, the next finds the state parked on the kept devices and in the staged units.
        _holders = [.. kept.Select(h => ((IReplicaGrain?)null, holders[h] with { Kind = HolderKind.Parked })), .. staged];
        await ReleaseQuietly(decision.Release.Select(h => found[h].Unit!).ToArray());

        var handOver = phases.Elapsed;
        var plan = await NewPlan(devices, target);
        var adopt = decision.AdoptedFrom.Select(h => h >= 0).ToArray();
        _units = await Prepare(plan, adopt, options.Value.JoinTimeout * attempt);
        var prepared = phases.Elapsed;
        _lastPrepare = prepared - handOver;
        _holders = [.. Enumerable.Range(0, plan.Dp).Where(n => adopt[n])
            .Select(n => ((IReplicaGrain?)_units[n], new StateHolder(plan.ReplicaGroupOf(n), HolderKind.Live, null, Tp: plan.Tp, ExpertPart: plan.ExpertPartOf(n)))), .. staged];

        string source;
        long moved = 0;
        if (decision.SourceSteps is { } steps)
        {
            try
            {
                (source, moved) = decision.Needy.Count == 0 ? ("kept on their devices", 0) : await TransferState(plan, decision, found);
            }
            catch
            {
                // The replicas that were to receive hold nothing yet: they give their devices back for the next attempt.
                await ReleaseQuietly(decision.Needy.Select(n => _units[n]).ToArray());
                throw;
            }
            await ReleaseQuietly(decision.Staged.Select(h => found[h].Unit!).ToArray());
            await Journal.RewindTo(steps);
        }
        else
        {
            var from = await Checkpoints.ComeBackPoint();
            if (from is not null) await Checkpoints.Restore(plan, _units, from);
            var why = !decision.PartLost ? "no replica survived"
                : old.Ep > 1 ? $"the experts are spread over {old.Ep} replicas and a part of them was lost with every replica hosting it"
                : $"the optimizer state is partitioned (zero {old.Zero}) and a part was lost with its replica";
            source = from is null ? $"{why} and there is no checkpoint: training starts over" : $"{why}: from the checkpoint {from}";
        }
        var lostSteps = committed - Committed;
        Policy.Replanned();
        Count(change.Cause);
        ElasticTelemetry.ReplanPause.Record(watch.Elapsed.TotalSeconds, ElasticTelemetry.Job(JobId), new("cause", change.CauseName));
        var predicted = Record.PredictedStepSeconds = Chooser.Predict(plan.ToLayout(), review).Step.Seconds;
        var measured = StepLog.Last(Record) is { } last ? last.Milliseconds / 1e3 : (double?)null;
        Journal.Add(JobEventKinds.Replanned, $"{change.CauseName}: {change.Detail}; {old.ToLayout()} -> {plan.ToLayout()} ({plan}); state {source}; paused {watch.Elapsed.TotalSeconds:F2} s " +
            $"(stage and hand over {handOver.TotalSeconds:F2} s, prepare {(prepared - handOver).TotalSeconds:F2} s, state {(phases.Elapsed - prepared).TotalSeconds:F2} s); {lostSteps} committed step(s) lost",
            new ReplanFields(change.CauseName, old.ToLayout().ToString(), plan.ToLayout().ToString(), watch.Elapsed.TotalSeconds, lostSteps, moved, predicted, measured));
        Writer.WriteSoon();
        return true;
    }

    /// <summary>
    /// The silos of lost holders to leave out of the next plan. A replica on one silo is lost with it. A pipeline's stages
    /// may be on several silos, and its replica grain may be gone with one of them while stages elsewhere still hold their
    /// devices: each of its units is told to let go directly, and only the silos whose units do not answer are left out.
    /// </summary>
    private async Task<List<SiloAddress>> UnreachableSilos(List<(IReplicaGrain? Unit, StateHolder Holder)> lost)
    {
        var unreachable = new HashSet<SiloAddress>();
        foreach (var (unit, holder) in lost)
        {
            var devices = holder.Devices;
            if (unit is null || devices.Select(d => d.Silo).Distinct().Count() == 1)
            {
                unreachable.UnionWith(devices.Select(d => d.Silo));
                continue;
            }
            var releases = devices.Select((d, u) => GrainFactory.GetGrain<IShardGroupGrain>(
                UnitKeys.ShardGroup(unit.GetPrimaryKeyString(), d.Silo, u / holder.Tp, u % holder.Tp)).Release().WaitAsync(options.Value.ProbeTimeout)).ToArray();
            try
            {
                await Task.WhenAll(releases);
            }
            catch
            {
                // Units that did not answer are on silos to leave out.
            }
            unreachable.UnionWith(devices.Where((_, u) => !releases[u].IsCompletedSuccessfully).Select(d => d.Silo));
        }
        return [.. unreachable];
    }

    /// <summary>
    /// Moves the state to the replicas that lack it: every kept replica at the source step and every staged unit sends, at
    /// once, the regions the plan gives it; every needy replica's tensor ranks receive theirs. Then every replica must hold
    /// the same bits.
    /// </summary>
    private async Task<(string Text, long Bytes)> TransferState(ParallelPlan plan, ReplanDecision decision, List<(IReplicaGrain? Unit, StateHolder Holder)> found)
    {
        List<(IReplicaGrain Unit, IReadOnlyList<DeviceSlot> Devices)> sources =
        [
            .. decision.KeptSources.Select(n => (_units[n], plan.ReplicaGroupOf(n))),
            .. decision.Staged.Select(h => (found[h].Unit!, found[h].Holder.Devices)),
        ];
        var members = sources.Concat(decision.Needy.Select(n => (Unit: _units[n], Devices: plan.ReplicaGroupOf(n)))).ToList();
        var firstRanks = members.Select((_, i) => members.Take(i).Sum(m => m.Devices.Count)).ToArray();
        var group = new StateTransferGroup($"{JobId}/g{plan.Generation}/state", members.SelectMany(m => m.Devices).Select(d => d.DataPlane).ToList(),
            options.Value.CollectiveTimeout, sources.Sum(s => s.Devices.Count), PeerSecret(plan));
        var bytes = await UnitCalls.OnAll(members.Select(m => m.Devices[0]).ToList(), members.Select((m, i) => m.Unit.TransferState(group, firstRanks[i])).ToArray(), "transferring state");
        await UnitCalls.SameState(plan, _units, "after the state transfer");
        var received = bytes.Skip(sources.Count).Sum();
        return ($"from {sources.Count} unit(s) on {group.Sources} device(s) to {decision.Needy.Count} replica(s) over the data plane ({received / 1e6:F1} MB)", received);
    }

    /// <summary>
    /// Below the minimum: a live unit that got furthest checkpoints its state (unless the latest checkpoint already has it),
    /// every device is given back, and the job waits for capacity.
    /// </summary>
    /// <param name="why">Why no layout runs on what is left (the planner's first reason).</param>
    private async Task WaitForCapacity(ReplanChange change, ParallelPlan old, List<(IReplicaGrain? Unit, StateHolder Holder)> found, List<StateHolder> holders, string? why)
    {
        var steps = holders.Where(h => h.Kind == HolderKind.Live && h.Alive).Select(h => h.Steps).Max();
        // Under ZeRO each replica holds a part of the optimizer state: only the whole live plan can write it.
        if (old.Partitioned)
        {
            if (steps > (Record.LastCheckpointStep ?? 0) && holders.Count == old.Dp && holders.All(h => h.Kind == HolderKind.Live && h.Steps == steps))
            {
                await Journal.RewindTo(steps!.Value);
                await Checkpoints.Begin(found.Select(h => h.Unit!).ToArray(), old, steps.Value);
                await Checkpoints.Settle();
            }
        }
        else if (steps > (Record.LastCheckpointStep ?? 0))
        {
            // A survivor that stays writes the checkpoint: one on a draining silo may be gone before its upload ends.
            var writer = Enumerable.Range(0, holders.Count).Where(h => holders[h].Kind == HolderKind.Live && holders[h].Steps == steps)
                .OrderBy(h => holders[h].Leaving ? 1 : 0).First();
            await Journal.RewindTo(steps.Value);
            var devices = holders[writer].Devices;
            await Checkpoints.Begin([found[writer].Unit!], Record.Plan! with { Dp = 1, Devices = devices }, steps.Value);
            await Checkpoints.Settle();
        }
        await ReleaseQuietly(found.Select(h => h.Unit).OfType<IReplicaGrain>().Union(_units).ToArray());
        _units = [];
        _holders = [];
        await OnCapacity(c => c.Release(JobId));
        Count(change.Cause);
        var kept = Record.LastCheckpointStep is { } saved ? $"its state is in the checkpoint of step {saved}" : "it has no checkpoint yet";
        Journal.Add(JobEventKinds.Replanned, $"{change.CauseName}: {change.Detail}; no layout runs on the devices left ({why ?? "none are left"}; some layout runs on {string.Join(" or ", Widths.Reverse().Take(3))} device(s)): {old.ToLayout()} stops, {kept}, and the job waits for devices",
            new ReplanFields(change.CauseName, old.ToLayout().ToString(), "", 0, 0, 0));
        Writer.WriteSoon();
    }

    private void Count(ReplanCause cause)
    {
        Record.Replans++;
        if (cause == ReplanCause.Preemption) Record.Preemptions++;
        if (cause == ReplanCause.Failure) Record.Failures++;
    }

    /// <summary>One device as itself; a tensor-parallel group as its silo and device indices.</summary>
    private static string Describe(IReadOnlyList<DeviceSlot> group) =>
        group.Count == 1 ? group[0].ToString() : $"{group[0].Silo}/devices {string.Join("+", group.Select(d => d.Device))}";
}
