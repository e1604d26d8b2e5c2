using Elastic.GrainInterfaces;
using Elastic.Grains.Telemetry;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;

namespace Elastic.Grains.Jobs.Replanning;

/// <summary>
/// Moves a job to a new plan at a step boundary, in a new generation (whatever the old one still had in flight is discarded),
/// in named phases: probe the holders of the state, commit the steps survivors finished that the record lacks, choose the
/// layout, allocate its devices, decide what each holder does (<see cref="ReplanDecision"/>), hand state over or stage it,
/// prepare the new units, move the state to those that lack it, and journal what happened. Replicas whose devices stay keep
/// their state there; new ranks receive their regions over the data plane from every unit that holds the furthest step;
/// only when no unit kept it does the job go back to its latest checkpoint (and the event says how many steps that lost).
/// An attempt that fails is tried again (three in all) from whatever it left holding the state, so nothing safe in memory is lost.
/// </summary>
public sealed class Replanner(IReplanJob job, JobOptions options, TimeProvider time)
{
    /// <summary>
    /// What holds the job's state during a re-plan: the plan's units when it begins; after an attempt failed, whatever that
    /// attempt left holding it (state parked on kept devices, staged units, new units that adopted).
    /// </summary>
    private List<HeldState> _holding = [];

    /// <summary>How long preparing the units of the last plan took: what a move is expected to cost besides moving state.</summary>
    public TimeSpan LastPrepare { get; private set; } = TimeSpan.FromSeconds(2);

    private JobRecord Record => job.Record;

    /// <summary>Attempts at one re-plan before the job stops its plan and plans again from its checkpoint.</summary>
    private const int Attempts = 3;

    /// <summary>False when no layout runs on the devices left, or every attempt failed: the state is checkpointed and the job waits for devices.</summary>
    public async Task<bool> Replan(ReplanChange change)
    {
        var running = Record.Plan!;
        _holding = [.. job.Units.Select((u, r) => new HeldState(u, LiveHolder(running, r)))];
        if (change.TakeOver) _holding = await WithParked(running, _holding, ProbeTimeout(change));
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ReplanOnce(change, attempt, running);
            }
            catch (Exception e) when (!job.CancelRequested && !CoordinatorFence.Replaced(e))
            {
                var error = e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}";
                if (attempt == Attempts)
                {
                    // Faults outside the job (a peer that never joined, a device still leased) are not the job's: it keeps its state
                    // in a checkpoint, stops this plan and plans again, rather than failing.
                    job.Journal.Add(JobEventKinds.ReplanFailed, $"attempt {attempt}: {error}; the job stops its plan and plans again");
                    var survivors = await Survivors.Probe(_holding, change.Leaving, options.ProbeTimeout);
                    await WaitForCapacity(change, running, running, survivors, $"the re-plan failed {attempt} times");
                    return false;
                }
                job.Journal.Add(JobEventKinds.ReplanFailed, $"attempt {attempt}: {error}; trying again");
                // The old plan is gone now (its state parked, staged or adopted): a move the job was not asked for gives way to
                // the planner's best layout on what is left, and nothing can be refused (there is no plan to go on as).
                change = change.Cause == ReplanCause.Request ? change : change with { Cause = ReplanCause.Failure, Target = null };
            }
        }
    }

    /// <summary>
    /// The holders with the state a lost coordinator's re-plan parked on their devices, which the silos report (found by the
    /// chaos soak: a coordinator lost after the hand-over left the state on the kept devices, and the next one went back to the
    /// checkpoint). A new replica adopts only on its own devices, and the plan is recorded before its units exist, so parked
    /// state lies on the devices of a replica of the recorded plan (the old one or the new): a replica whose devices hold
    /// some is that parked state, as far as its trainer got. Each look waits as long as the take-over's probe of a live unit: a
    /// look whose unit activates while the grain directory waits out a dead silo's partition answers only once the cluster
    /// declares that silo dead (found by the sixth soak: a look given up after 5 s lost parked state on a live silo).
    /// </summary>
    private async Task<List<HeldState>> WithParked(ParallelPlan plan, List<HeldState> holding, TimeSpan patience)
    {
        var looks = Enumerable.Range(0, holding.Count).Select(r =>
        {
            var (unit, assignment) = job.ParkedState(Alone(plan, plan.ReplicaGroupOf(r)), r);
            return unit.ParkedSteps(assignment).WaitAsync(patience);
        }).ToArray();
        try
        {
            await Task.WhenAll(looks);
        }
        catch
        {
            // Devices with nothing parked (their unit is live, or nothing is left) keep their holder as it was.
        }
        return [.. holding.Select((h, r) => looks[r].IsCompletedSuccessfully ? new HeldState(null, h.Holder with { Kind = HolderKind.Parked, Steps = looks[r].Result }) : h)];
    }

    /// <param name="attempt">1, 2, 3: each retry gives the new units longer to join (one slow to activate while the grain
    /// directory recovers from a lost silo would otherwise miss every attempt's join by the same margin).</param>
    /// <param name="running">The plan the job ran before the re-plan began (an attempt that failed may have made a newer one).</param>
    private async Task<bool> ReplanOnce(ReplanChange change, int attempt, ParallelPlan running)
    {
        using var span = ElasticTelemetry.Traces.StartActivity("replan");
        span?.SetTag("job", job.JobId).SetTag("cause", change.CauseName).SetTag("attempt", attempt);
        var started = time.GetTimestamp();
        var old = Record.Plan!;
        await job.Checkpoints.Settle();

        var survivors = await Survivors.Probe(_holding, change.Leaving, ProbeTimeout(change));
        // A unit that is only slow still holds its device lease: tell it to let go, without waiting for it.
        _ = job.ReleaseQuietly([.. survivors.Lost.Select(h => survivors.Found[h].Unit).OfType<IReplicaGrain>()]);
        await CommitSurvivorsSteps(survivors);
        var committed = job.Journal.Committed;

        var (target, review, refusable, unreachable, why) = await Choose(change, survivors, attempt);
        survivors = survivors.AlsoLeaving(review.Leaving);
        if (target is null)
        {
            await WaitForCapacity(change, running, old, survivors, why);
            return false;
        }
        var devices = await Allocate(target, survivors, unreachable, refusable);
        if (devices.Count == 0)
        {
            if (refusable)
            {
                job.Journal.Add(JobEventKinds.ReplanRefused, $"{change.Detail}: {target.Devices} device(s) in groups of {target.Tp} on one silo are not free; the job goes on as {old}");
                return true;
            }
            await WaitForCapacity(change, running, old, survivors, $"{target.Devices} device(s) for {target} are not free");
            return false;
        }
        (var decision, survivors) = await Unpark(Decide(old, target, devices, survivors), survivors, old, target, devices);

        var phases = time.GetTimestamp();
        var staged = await HandOver(decision, survivors);
        var handOver = time.GetElapsedTime(phases);
        var (plan, adopt) = await PrepareUnits(devices, target, decision, staged, attempt);
        var prepared = time.GetElapsedTime(phases);
        LastPrepare = prepared - handOver;

        var (source, moved, kept) = await MoveState(plan, old, decision, survivors);
        JournalReplan(change, running, plan, review, source, moved, committed - kept,
            (time.GetElapsedTime(started), handOver, prepared - handOver, time.GetElapsedTime(phases) - prepared));
        return true;
    }

    /// <summary>
    /// How long a unit may take to say how far it got. A coordinator that takes over may find a unit still in the step its
    /// predecessor began, blocked in a collective with a peer that stopped: the unit answers once that step ends, done or
    /// failed at the collective timeout, and is a survivor then (found by the fourth soak: take-overs went back to a
    /// checkpoint with a unit of the plan alive). A unit on a silo that died fails sooner, once the cluster declares it dead.
    /// </summary>
    private TimeSpan ProbeTimeout(ReplanChange change) => change.TakeOver ? options.CollectiveTimeout + options.ProbeTimeout : options.ProbeTimeout;

    /// <summary>Survivors finished steps this coordinator has no record of (it took over from a lost one): they are committed first.</summary>
    private async Task CommitSurvivorsSteps(Survivors survivors)
    {
        if (!(survivors.Furthest > job.Journal.Committed) || survivors.Ahead is not { } ahead) return;
        foreach (var result in await ahead.StepResults(job.Journal.Committed))
            if (result.Step == job.Journal.Committed + 1) job.Journal.Commit(result.Step, [result], result.Seconds);
    }

    /// <summary>
    /// The layout to move to. One asked for (or found worth moving to) either fits now or is refused, the job going on as it is
    /// (on a first attempt only); a re-plan forced by lost or leaving units takes the planner's best layout on what is left (null
    /// when none fits, with the planner's first reason why).
    /// </summary>
    private async Task<(Layout? Target, CapacityReview Review, bool Refusable, List<SiloAddress> Unreachable, string? Why)> Choose(ReplanChange change, Survivors survivors, int attempt)
    {
        // Only the first attempt finds the old plan whole, to go on as when the move is refused.
        var refusable = change.Target is not null && survivors.Lost.Count == 0 && attempt == 1;
        var unreachable = await UnreachableSilos([.. survivors.Lost.Select(h => survivors.Found[h])]);
        var review = await job.OnCapacity(c => c.Review(job.JobId, job.Standing, job.Widths, survivors.AliveDevices));
        if (change.Target is { } asked) return (asked, review, refusable, unreachable, null);
        var ranking = await job.Rank(review, unreachable);
        return (ranking.Choice?.Layout, review, refusable, unreachable, ranking.Rejected.FirstOrDefault());
    }

    private async Task<IReadOnlyList<DeviceSlot>> Allocate(Layout target, Survivors survivors, List<SiloAddress> unreachable, bool refusable)
    {
        var request = new AllocationRequest(job.JobId, job.Standing, [target.Devices], survivors.AliveDevices, unreachable, target.Tp,
            KeepWhenShort: refusable, Serving: survivors.ServingDevices);
        return (await job.OnCapacity(c => c.Allocate(request))).Devices;
    }

    private ReplanDecision Decide(ParallelPlan old, Layout target, IReadOnlyList<DeviceSlot> devices, Survivors survivors)
    {
        var (pp, tp) = (target.Pp, target.Tp);
        // Under ZeRO a replica's optimizer state is its part of a dp-wide partition: state is re-sharded over the data plane, never adopted.
        var partitioned = target.Zero > 0 && devices.Count > pp * tp;
        return ReplanDecision.Make(survivors.Holders, devices, pp * tp,
            sameShape: pp == old.Pp && tp == old.Tp && target.VirtualStages == old.VirtualStages && !old.Partitioned && !partitioned && target.Ep == old.Ep,
            partitioned: old.Partitioned, experts: (old.Ep, target.Ep), floor: Math.Min(Record.LastCheckpointStep ?? 0, job.Journal.Committed), ceiling: job.Journal.Committed);
    }

    /// <summary>
    /// State a failed attempt parked on devices that no new replica adopts, and that must serve, is taken into host memory by a
    /// unit on those devices (found by the chaos suite: a grow failed after its units took the state over, and by the retry the
    /// silo was draining, so no new replica was there to adopt it). Holders that cannot be unparked are lost, and the decision is
    /// made again without them.
    /// </summary>
    private async Task<(ReplanDecision, Survivors)> Unpark(ReplanDecision decision, Survivors survivors, ParallelPlan old, Layout target, IReadOnlyList<DeviceSlot> devices)
    {
        while (decision.Unpark.Count > 0)
        {
            survivors = await StageParked(decision.Unpark, survivors, old);
            decision = Decide(old, target, devices, survivors);
        }
        return (decision, survivors);
    }

    /// <summary>A unit on the devices of each of the <paramref name="parked"/> holders takes its state into host memory; those that fail are lost.</summary>
    private async Task<Survivors> StageParked(IReadOnlyList<int> parked, Survivors survivors, ParallelPlan old)
    {
        var units = parked.ToDictionary(h => h, h => job.ParkedState(Alone(old, survivors.Holders[h].Devices), h));
        var calls = units.ToDictionary(u => u.Key, u => u.Value.Unit.StageParked(u.Value.Assignment).WaitAsync(options.CollectiveTimeout));
        try
        {
            await Task.WhenAll(calls.Values);
        }
        catch
        {
            // Holders whose unit failed are lost; the unit lets go of whatever it took.
        }
        var failed = calls.Where(c => !c.Value.IsCompletedSuccessfully).Select(c => units[c.Key].Unit).ToArray();
        _ = job.ReleaseQuietly(failed);
        survivors = survivors.Unparked(calls.ToDictionary(c => c.Key, c => c.Value.IsCompletedSuccessfully ? units[c.Key].Unit : null), old.Generation);
        _holding = [.. survivors.Found];
        return survivors;
    }

    /// <summary>Holders that stay hand their state over on their devices, those that serve stage it, the rest are released; returns the staged ones.</summary>
    private async Task<List<HeldState>> HandOver(ReplanDecision decision, Survivors survivors)
    {
        var holders = survivors.Holders;
        await UnitCalls.OnAll([.. decision.Stage.Select(h => holders[h].Devices[0])], [.. decision.Stage.Select(h => survivors.UnitOf(h).Stage())], "staging state");
        await UnitCalls.OnAll([.. decision.HandOver.Select(h => holders[h].Devices[0])], [.. decision.HandOver.Select(h => survivors.UnitOf(h).Handover())], "handing state over");
        var staged = decision.Staged.Select(h => new HeldState(survivors.Found[h].Unit, holders[h] with { Kind = HolderKind.Staged })).ToList();
        // Should the rest of this attempt fail, the next finds the state parked on the kept devices and in the staged units.
        _holding = [.. decision.AdoptedFrom.Where(h => h >= 0).Select(h => new HeldState(null, holders[h] with { Kind = HolderKind.Parked })), .. staged];
        await job.ReleaseQuietly([.. decision.Release.Select(survivors.UnitOf)]);
        return staged;
    }

    private async Task<(ParallelPlan Plan, bool[] Adopt)> PrepareUnits(IReadOnlyList<DeviceSlot> devices, Layout target, ReplanDecision decision, List<HeldState> staged, int attempt)
    {
        var plan = await job.NewPlan(devices, target);
        var adopt = decision.AdoptedFrom.Select(h => h >= 0).ToArray();
        job.Units = await job.Prepare(plan, adopt, options.JoinTimeout * attempt);
        _holding = [.. Enumerable.Range(0, plan.Dp).Where(n => adopt[n]).Select(n => new HeldState(job.Units[n], LiveHolder(plan, n))), .. staged];
        return (plan, adopt);
    }

    /// <summary>
    /// The state reaches the replicas that lack it, over the data plane from those that hold it, or from the latest checkpoint;
    /// <c>Kept</c>: the step of the state the re-plan chose (a damaged checkpoint's fallback behind it declares its own loss).
    /// </summary>
    private async Task<(string Source, long Bytes, long Kept)> MoveState(ParallelPlan plan, ParallelPlan old, ReplanDecision decision, Survivors survivors)
    {
        if (decision.SourceSteps is { } steps)
        {
            (string Text, long Bytes) moved;
            try
            {
                moved = decision.Needy.Count == 0 ? ("kept on their devices", 0) : await TransferState(plan, decision, survivors);
                moved.Text += $", at step {steps}";
            }
            catch
            {
                // The replicas that were to receive hold nothing yet: they give their devices back for the next attempt.
                await job.ReleaseQuietly([.. decision.Needy.Select(n => job.Units[n])]);
                throw;
            }
            await job.ReleaseQuietly([.. decision.Staged.Select(survivors.UnitOf)]);
            await job.Journal.RewindTo(steps);
            return (moved.Text, moved.Bytes, steps);
        }
        var from = await job.Checkpoints.ComeBackPoint();
        var kept = job.Journal.Committed;
        // Found by the fifth soak (chaos-0-26): the event named the damaged checkpoint, not the one the restore fell back to.
        if (from is not null) from = await job.Checkpoints.Restore(plan, job.Units, from);
        var why = !decision.PartLost ? survivors.Furthest is { } furthest ? $"no replica holds the state past step {furthest}" : "no replica survived"
            : old.Ep > 1 ? $"the experts are spread over {old.Ep} replicas and a part of them was lost with every replica hosting it"
            : $"the optimizer state is partitioned (zero {old.Zero}) and a part was lost with its replica";
        return (from is null ? $"{why} and there is no checkpoint: training starts over" : $"{why}: from the checkpoint {from}", 0, kept);
    }

    private void JournalReplan(ReplanChange change, ParallelPlan old, ParallelPlan plan, CapacityReview review, string source, long moved, long lostSteps,
        (TimeSpan Total, TimeSpan HandOver, TimeSpan Prepare, TimeSpan State) pause)
    {
        job.Policy.Replanned();
        Count(change.Cause);
        ElasticTelemetry.ReplanPause.Record(pause.Total.TotalSeconds, ElasticTelemetry.Job(job.JobId), new("cause", change.CauseName));
        // The new layout's step as the model predicts it, refined by how this job's last layout measured against the model.
        var model = job.Chooser.Predict(plan.ToLayout(), review).Step.Seconds;
        var measured = StepLog.Last(Record) is { } last ? last.Milliseconds / 1e3 : (double?)null;
        var predicted = StepTimeModel.Refined(model, job.Chooser.Predict(old.ToLayout(), review).Step.Seconds, measured);
        Record.PredictedStepSeconds = predicted;
        job.Journal.Add(JobEventKinds.Replanned, $"{change.CauseName}: {change.Detail}; {old.ToLayout()} -> {plan.ToLayout()} ({plan}); state {source}; paused {pause.Total.TotalSeconds:F2} s " +
            $"(stage and hand over {pause.HandOver.TotalSeconds:F2} s, prepare {pause.Prepare.TotalSeconds:F2} s, state {pause.State.TotalSeconds:F2} s); {lostSteps} committed step(s) lost; " +
            $"step predicted {StepTimeEstimate.Format(predicted)} ({StepTimeEstimate.Format(model)} by the model{(predicted != model ? ", scaled by what the last layout measured against it" : "")})",
            new ReplanFields(change.CauseName, old.ToLayout().ToString(), plan.ToLayout().ToString(), pause.Total.TotalSeconds, lostSteps, moved, predicted, measured));
        job.WriteSoon();
    }

    /// <summary>
    /// The silos of lost holders to leave out of the next plan. A replica on one silo is lost with it. A pipeline's stages
    /// may be on several silos, and its replica grain may be gone with one of them while stages elsewhere still hold their
    /// devices: each of its units is told to let go directly, and only the silos whose units do not answer are left out.
    /// </summary>
    private async Task<List<SiloAddress>> UnreachableSilos(List<HeldState> lost)
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
            var releases = devices.Select((d, u) => job.ShardGroup(UnitKeys.ShardGroup(unit.GetPrimaryKeyString(), d.Silo, u / holder.Tp, u % holder.Tp))
                .Release().WaitAsync(options.ProbeTimeout)).ToArray();
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
    private async Task<(string Text, long Bytes)> TransferState(ParallelPlan plan, ReplanDecision decision, Survivors survivors)
    {
        var units = job.Units;
        List<(IReplicaGrain Unit, IReadOnlyList<DeviceSlot> Devices)> sources =
        [
            .. decision.KeptSources.Select(n => (units[n], plan.ReplicaGroupOf(n))),
            .. decision.Staged.Select(h => (survivors.UnitOf(h), survivors.Found[h].Holder.Devices)),
        ];
        var members = sources.Concat(decision.Needy.Select(n => (Unit: units[n], Devices: plan.ReplicaGroupOf(n)))).ToList();
        var firstRanks = members.Select((_, i) => members.Take(i).Sum(m => m.Devices.Count)).ToArray();
        var group = new StateTransferGroup($"{job.JobId}/g{plan.Generation}/state", [.. members.SelectMany(m => m.Devices).Select(d => d.DataPlane)],
            options.CollectiveTimeout, sources.Sum(s => s.Devices.Count), job.PeerSecret(plan));
        var bytes = await UnitCalls.OnAll([.. members.Select(m => m.Devices[0])], [.. members.Select((m, i) => m.Unit.TransferState(group, firstRanks[i]))], "transferring state");
        await UnitCalls.SameState(plan, units, "after the state transfer");
        var received = bytes.Skip(sources.Count).Sum();
        return ($"from {sources.Count} unit(s) on {group.Sources} device(s) to {decision.Needy.Count} replica(s) over the data plane ({received / 1e6:F1} MB)", received);
    }

    /// <summary>
    /// No layout runs on what is left: a unit that got furthest checkpoints its state (unless the latest checkpoint already has
    /// it; state only parked on its devices is staged first, so that a unit holds it), every device is given back, and the
    /// job waits for capacity.
    /// </summary>
    /// <param name="running">The plan the job ran before the re-plan, for the event.</param>
    /// <param name="old">The plan of the holders' state (its partition under ZeRO).</param>
    /// <param name="why">Why no layout runs on what is left (the planner's first reason).</param>
    private async Task WaitForCapacity(ReplanChange change, ParallelPlan running, ParallelPlan old, Survivors survivors, string? why)
    {
        // A checkpoint past the committed steps would never be resumed from (a resume takes the newest within them).
        var steps = survivors.Holders.Where(h => h.Steps <= job.Journal.Committed).Select(h => h.Steps).Max();
        // Steps a replica that is gone finished past the survivors' are trained again: said in the event (the fourth soak's
        // chaos-2-16 went from 112 committed steps back to 110 unsaid).
        var lost = 0L;
        // Under ZeRO each replica holds a part of the optimizer state: only the whole live plan can write it.
        if (old.Partitioned)
        {
            var holders = survivors.Holders;
            if (steps > (Record.LastCheckpointStep ?? 0) && holders.Count == old.Dp && holders.All(h => h.Kind == HolderKind.Live && h.Steps == steps))
            {
                lost = await job.Journal.RewindTo(steps!.Value);
                await job.Checkpoints.Begin([.. survivors.Found.Select(h => h.Unit!)], old, steps.Value);
                await job.Checkpoints.Settle();
            }
        }
        else if (steps > (Record.LastCheckpointStep ?? 0))
        {
            bool Furthest(StateHolder h) => h.Steps == steps;
            if (!survivors.Holders.Any(h => h.Kind != HolderKind.Parked && Furthest(h)))
                survivors = await StageParked([.. Enumerable.Range(0, survivors.Holders.Count).Where(h => survivors.Holders[h].Kind == HolderKind.Parked && Furthest(survivors.Holders[h]))], survivors, old);
            var holders = survivors.Holders;
            // A live unit that stays writes the checkpoint, before a staged one: one on a draining silo may be gone before its upload ends.
            var writers = Enumerable.Range(0, holders.Count).Where(h => holders[h].Kind != HolderKind.Parked && Furthest(holders[h]))
                .OrderBy(h => holders[h].Leaving ? 1 : 0).ThenBy(h => holders[h].Kind == HolderKind.Live ? 0 : 1).ToList();
            if (writers.Count > 0)
            {
                var writer = writers[0];
                lost = await job.Journal.RewindTo(steps.Value);
                await job.Checkpoints.Begin([survivors.UnitOf(writer)], Record.Plan! with { Generation = holders[writer].Generation, Dp = 1, Devices = holders[writer].Devices }, steps.Value);
                await job.Checkpoints.Settle();
            }
        }
        await job.ReleaseQuietly([.. survivors.Found.Select(h => h.Unit).OfType<IReplicaGrain>().Union(job.Units)]);
        job.Units = [];
        _holding = [];
        await job.OnCapacity(async c =>
        {
            await c.Release(job.JobId);
            return true;
        });
        Count(change.Cause);
        var kept = Record.LastCheckpointStep is { } saved ? $"its state is in the checkpoint of step {saved}" : "it has no checkpoint yet";
        var retrained = lost > 0 ? $" ({lost} committed step(s) after step {steps} will be trained again: the replicas that took them are gone)" : "";
        job.Journal.Add(JobEventKinds.Replanned, $"{change.CauseName}: {change.Detail}; no layout runs on the devices left ({why ?? "none are left"}; some layout runs on {string.Join(" or ", job.Widths.Reverse().Take(3))} device(s)): {running.ToLayout()} stops, {kept}{retrained}, and the job waits for devices",
            new ReplanFields(change.CauseName, running.ToLayout().ToString(), "", 0, lost, 0));
        job.WriteSoon();
    }

    private void Count(ReplanCause cause)
    {
        Record.Replans++;
        if (cause == ReplanCause.Preemption) Record.Preemptions++;
        if (cause == ReplanCause.Failure) Record.Failures++;
    }

    /// <summary><paramref name="plan"/>'s layout as one replica on <paramref name="devices"/>: what a unit there that holds parked state runs.</summary>
    private static ParallelPlan Alone(ParallelPlan plan, IReadOnlyList<DeviceSlot> devices) => plan with { Dp = 1, Ep = 1, Zero = 0, Devices = devices };

    private static StateHolder LiveHolder(ParallelPlan plan, int replica) =>
        new(plan.ReplicaGroupOf(replica), HolderKind.Live, null, Tp: plan.Tp, ExpertPart: plan.ExpertPartOf(replica), Generation: plan.Generation);
}
