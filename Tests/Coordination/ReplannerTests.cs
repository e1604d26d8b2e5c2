using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Jobs.Replanning;
using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Tests.Coordination;

/// <summary>
/// The re-plan's phases with fake units and capacity, as Orleans tests its membership agent: an attempt that fails part-way
/// leaves the state where the next attempt finds it, so a failed prepare or a unit killed mid-move loses no committed step.
/// </summary>
public sealed class ReplannerTests
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(steps: 20, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };

    [Fact]
    public async Task A_failed_prepare_is_tried_again_from_the_state_parked_on_the_kept_device_and_no_step_is_lost()
    {
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        var first = true;
        job.OnPrepare = (_, _) =>
        {
            if (!first) return;
            first = false;
            throw new JobFailure("preparing the new units failed: a unit did not join in time");
        };
        job.Gone.Add("b");
        var leaving = new ReplanChange(ReplanCause.Leave, "silo b is draining") { Leaving = [job.Device("b")] };

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(leaving));

        // Both attempts put the one replica left on device a, adopting the state the old replica there handed over.
        Assert.Equal(2, job.Prepared.Count);
        Assert.All(job.Prepared, p => Assert.Equal([job.Device("a")], p.Plan.Devices));
        Assert.All(job.Prepared, p => Assert.Equal([true], p.Adopt));
        Assert.Contains("attempt 1: preparing the new units failed", Assert.Single(job.Events(JobEventKinds.ReplanFailed)).Message);
        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("state kept on their devices", replanned.Message);
        Assert.Equal((0L, "dp=2,pp=1,tp=1", "dp=1,pp=1,tp=1"), (replanned.Replan!.StepsLost, replanned.Replan.From, replanned.Replan.To));
        Assert.Equal(5, job.Journal.Committed);
        Assert.Equal(3, job.Record.Generation);
    }

    [Fact]
    public async Task A_source_killed_mid_move_leaves_the_next_attempt_to_move_the_state_from_the_survivor_without_its_silo()
    {
        var job = new FakeReplanJob(Spec, ["a", "b", "c", "d"], replicas: 2, committed: 5);
        // The first attempt's new replica on silo b (it adopted b's state) dies while it sends it to the replica on c.
        job.OnPrepare = (plan, units) =>
        {
            if (plan.Generation == 2) units[plan.Devices.ToList().IndexOf(job.Device("b"))].DiesInTransfer = true;
        };
        var grow = new ReplanChange(ReplanCause.Join, "devices joined") { Target = new Layout(3) };

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(grow));

        Assert.Equal(2, job.Prepared.Count);
        Assert.Equal([job.Device("a"), job.Device("b"), job.Device("c")], job.Prepared[0].Plan.Devices);
        // The second attempt leaves out b's silo (its unit no longer answers): a keeps its state, c and d receive it from a.
        AssertTheSecondAttemptMovedTheStateFromOneUnit(job, [job.Device("a"), job.Device("c"), job.Device("d")], [true, false, false]);
        Assert.Contains("transferring state failed", Assert.Single(job.Events(JobEventKinds.ReplanFailed)).Message);
    }

    /// <summary>The second attempt's devices and adoptions, and its one re-plan: the state sent from one unit to two replicas, no step lost.</summary>
    private static void AssertTheSecondAttemptMovedTheStateFromOneUnit(FakeReplanJob job, DeviceSlot[] devices, bool[] adopt)
    {
        var (plan, adopted) = job.Prepared[1];
        Assert.Equal(devices, plan.Devices);
        Assert.Equal(adopt, adopted);
        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("from 1 unit(s) on 1 device(s) to 2 replica(s) over the data plane", replanned.Message);
        Assert.Equal(0, replanned.Replan!.StepsLost);
        Assert.Equal(5, job.Journal.Committed);
    }

    [Fact]
    public async Task A_grow_whose_first_attempt_fails_and_whose_new_devices_are_gone_by_the_second_replans_onto_what_is_left()
    {
        // Found by the chaos suite: the second attempt refused the grow "going on as" the plan the first attempt made, whose
        // units never prepared, and the job then lost its steps back to its checkpoint.
        var job = new FakeReplanJob(Spec, ["a", "b", "c", "d"], replicas: 2, committed: 5);
        job.OnPrepare = (plan, _) =>
        {
            if (plan.Generation != 2) return;
            job.Gone.UnionWith(["c", "d"]);
            throw new JobFailure("preparing the new units failed: a unit did not join in time");
        };
        var grow = new ReplanChange(ReplanCause.Join, "devices joined") { Target = new Layout(4) };

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(grow));

        Assert.Equal(2, job.Prepared.Count);
        var (plan, adopt) = job.Prepared[1];
        Assert.Equal([job.Device("a"), job.Device("b")], plan.Devices);
        Assert.Equal([true, true], adopt);
        Assert.Empty(job.Events(JobEventKinds.ReplanRefused));
        Assert.Equal(0, Assert.Single(job.Events(JobEventKinds.Replanned)).Replan!.StepsLost);
        Assert.Equal((5L, 3), (job.Journal.Committed, job.Record.Plan!.Generation));
    }

    /// <summary>A job on silo a grows to two replicas; the attempt fails after a adopted, and a leaves (drained, or killed).</summary>
    private static async Task<FakeReplanJob> GrowFailingAfterAdoptionWhileTheSiloLeaves(bool killed)
    {
        var job = new FakeReplanJob(Spec, ["a", "b", "c"], replicas: 1, committed: 5);
        job.OnPrepare = (plan, _) =>
        {
            if (plan.Generation != 2) return;
            job.Gone.Add("a");
            if (killed) job.Killed.Add("a");
            throw new JobFailure("preparing the new units failed: a unit did not join in time");
        };
        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Join, "devices joined") { Target = new Layout(2) }));
        return job;
    }

    [Fact]
    public async Task A_grow_that_fails_after_adopting_on_a_silo_that_then_drains_stages_the_parked_state_there_and_moves_it_losing_no_step()
    {
        // Found by the chaos suite: the retry found the state parked on the devices of a draining silo, where no new replica
        // could adopt it, counted it unreachable and went back to the checkpoint.
        var job = await GrowFailingAfterAdoptionWhileTheSiloLeaves(killed: false);

        Assert.Equal([true, false], job.Prepared[0].Adopt);
        Assert.Equal([[job.Device("a")]], job.Unparked);
        AssertTheSecondAttemptMovedTheStateFromOneUnit(job, [job.Device("b"), job.Device("c")], [false, false]);
    }

    [Fact]
    public async Task A_drain_that_begins_during_a_replan_is_seen_by_the_next_attempt_so_the_silo_waits_while_its_parked_state_serves()
    {
        // Found by the chaos soak: a grow failed after adopting on silo a, whose drain began meanwhile; the retry still took a's
        // holders as staying (the change's leaving devices were those of the grow: none), did not tell the capacity grain that
        // a serves the state, and the drain, seeing no job on a, let the silo stop with the job's state on it.
        var job = new FakeReplanJob(Spec, ["a", "b", "c"], replicas: 1, committed: 5);
        job.OnPrepare = (plan, _) =>
        {
            if (plan.Generation != 2) return;
            job.Draining.Add("a");
            throw new JobFailure("preparing the new units failed: a unit did not join in time");
        };

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Join, "devices joined") { Target = new Layout(2) }));

        Assert.Equal([job.Device("a")], job.Allocations[^1].Serving);
        Assert.Equal([[job.Device("a")]], job.Unparked);
        AssertTheSecondAttemptMovedTheStateFromOneUnit(job, [job.Device("b"), job.Device("c")], [false, false]);
    }

    [Fact]
    public async Task With_its_state_only_parked_and_no_layout_left_the_job_stages_the_state_and_checkpoints_it_before_it_waits()
    {
        // A grow handed the state over on a, then failed; by the retry a drains and b is gone: no layout runs. The state
        // parked on a is taken into host memory by a unit there, which writes the checkpoint, instead of being given up.
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 1, committed: 5);
        job.OnPrepare = (plan, _) =>
        {
            if (plan.Generation != 2) return;
            job.Draining.Add("a");
            job.Gone.Add("b");
            throw new JobFailure("preparing the new units failed: a unit did not join in time");
        };

        Assert.False(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Join, "devices joined") { Target = new Layout(2) }));

        Assert.Equal([[job.Device("a")]], job.Unparked);
        Assert.Equal(5, job.ParkedUnits.Single().CheckpointBegun);
        Assert.True(job.ParkedUnits.Single().Released, "the unit that wrote the checkpoint lets go of the state once it is written");
        Assert.Contains("the job waits for devices", job.Events(JobEventKinds.Replanned).Last().Message);
    }

    [Fact]
    public async Task A_coordinator_that_takes_over_mid_replan_finds_the_state_its_predecessor_parked_and_adopts_it_where_it_lies()
    {
        // Found by the chaos soak: the coordinator was lost after its re-plan handed the state over on the kept devices, before
        // the new units adopted it; the next one found the recorded plan's units holding nothing and went back to the checkpoint.
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        foreach (var unit in job.Units.Cast<FakeUnit>()) unit.Released = true;
        job.ParkedOn[job.Device("a")] = 5;
        job.ParkedOn[job.Device("b")] = 5;

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "the coordinator was lost") { TakeOver = true }));

        Assert.Equal([true, true], Assert.Single(job.Prepared).Adopt);
        Assert.Empty(job.Unparked);
        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("state kept on their devices, at step 5;", replanned.Message);
        Assert.Equal(0, replanned.Replan!.StepsLost);
        Assert.Equal(5, job.Journal.Committed);
    }

    [Fact]
    public async Task A_coordinator_that_takes_over_waits_for_a_unit_still_in_its_predecessors_step_and_keeps_its_state()
    {
        // Found by the chaos soak: the coordinator and replica b's silo were lost mid-step; replica a, blocked in the step's
        // collective with b, answered only when the step failed at the collective timeout, after the probe had given it up,
        // and the job went back to its checkpoint with a unit of the plan alive.
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        job.Units = [new FakeUnit(5) { AnswersAfter = FakeReplanJob.Options.ProbeTimeout * 3 }, new FakeUnit(5) { Dead = true }];
        job.Gone.Add("b");

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "the coordinator was lost") { TakeOver = true }));

        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("state kept on their devices, at step 5;", replanned.Message);
        Assert.Equal(0, replanned.Replan!.StepsLost);
        Assert.Equal(5, job.Journal.Committed);
    }

    [Fact]
    public async Task A_coordinator_that_takes_over_waits_for_a_look_at_parked_state_that_answers_late_and_adopts_it()
    {
        // Found by the sixth soak (chaos-0-15): the look at state parked on a live silo activated while the grain directory
        // waited out a dead silo's partition; given up after the 5 s probe, the job went back to its checkpoint (9 steps).
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5) { ParkedAnswersAfter = FakeReplanJob.Options.ProbeTimeout * 3 };
        foreach (var unit in job.Units.Cast<FakeUnit>()) unit.Released = true;
        job.ParkedOn[job.Device("a")] = 5;
        job.ParkedOn[job.Device("b")] = 5;

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "the coordinator was lost") { TakeOver = true }));

        Assert.Equal([true, true], Assert.Single(job.Prepared).Adopt);
        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Equal(0, replanned.Replan!.StepsLost);
        Assert.Equal(5, job.Journal.Committed);
    }

    [Fact]
    public async Task State_parked_past_the_steps_on_record_is_not_trained_on_after_a_take_over()
    {
        // The lost coordinator parked the state after steps 6 and 7, which it never recorded and no unit can report now: training
        // on from step 7's state would number it step 6. The replica kept at the committed step serves; the other receives.
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        ((FakeUnit)job.Units[0]).Released = true;
        job.ParkedOn[job.Device("a")] = 7;

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "the coordinator was lost") { TakeOver = true }));

        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("from 1 unit(s) on 1 device(s) to 1 replica(s) over the data plane (0.0 MB), at step 5;", replanned.Message);
        Assert.Empty(job.Unparked);
        Assert.Equal(5, job.Journal.Committed);
    }

    [Fact]
    public async Task Parked_state_on_a_silo_that_no_longer_answers_is_lost_and_the_replan_goes_on_from_what_is_left()
    {
        var job = await GrowFailingAfterAdoptionWhileTheSiloLeaves(killed: true);

        Assert.Single(job.Unparked);
        Assert.Equal(2, job.Prepared.Count);
        Assert.Contains("no replica survived and there is no checkpoint: training starts over", Assert.Single(job.Events(JobEventKinds.Replanned)).Message);
    }

    [Fact]
    public async Task Steps_only_a_lost_replica_took_are_declared_lost_when_the_job_checkpoints_the_survivor_and_waits()
    {
        // Found by the chaos soak (chaos-2-16): replica b finished steps 6 and 7 (a step counts when some replica finishes it)
        // and died; a, at step 5, was checkpointed and the committed count went from 7 back to 5 with no event saying so.
        var job = new FakeReplanJob(Spec with { Devices = new DeviceSpec { Min = 2, Max = 4 } }, ["a", "b"], replicas: 2, committed: 7);
        job.Units = [new FakeUnit(5), new FakeUnit(7) { Dead = true }];
        job.Gone.Add("b");

        Assert.False(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "silo b died")));

        Assert.Equal(5, job.Journal.Committed);
        var waiting = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Equal(2, waiting.Replan!.StepsLost);
        Assert.Contains("2 committed step(s) after step 5 will be trained again", waiting.Message);
        Assert.Contains("the job waits for devices", waiting.Message);
    }

    [Fact]
    public async Task Steps_a_damaged_checkpoints_fallback_loses_are_declared_by_the_fallback_not_counted_again_by_the_replan()
    {
        // Found by the fifth soak (chaos-0-26, chaos-2-11): no replica held the state, the checkpoint of step 7 was damaged and
        // the restore fell back to step 5; its event declared the two steps, and the re-plan's counted them lost again while
        // naming the damaged checkpoint as where the state came from.
        var job = new FakeReplanJob(Spec, ["a", "b", "c"], replicas: 2, committed: 7);
        foreach (var unit in job.Units.Cast<FakeUnit>()) unit.Dead = true;
        using var checkpoints = new Checkpoints.CheckpointFixture(job.Store) { Layout = Elastic.Checkpoints.CheckpointLayout.ForJob(job.JobId) };
        foreach (var step in new[] { 5L, 7L }) await checkpoints.Save("w", [1f, 2f], [2], Checkpoints.CheckpointFixture.Even([2], 0, 1), step);
        job.Record.LastCheckpointStep = 7;
        var damaged = Elastic.Checkpoints.CheckpointLayout.ForJob(job.JobId).Manifest(7, 1);
        job.OnPrepare = (_, units) => { foreach (var unit in units) unit.Damaged = damaged; };

        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "the replicas' silo died")));

        Assert.Equal(5, job.Journal.Committed);
        Assert.Contains("falling back to the checkpoint of step 5", Assert.Single(job.Events(JobEventKinds.CheckpointUnreadable)).Message);
        var replanned = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Equal(0, replanned.Replan!.StepsLost);
        Assert.Contains($"from the checkpoint {Elastic.Checkpoints.CheckpointLayout.ForJob(job.JobId).Manifest(5, 1)}", replanned.Message);
    }

    [Fact]
    public async Task With_every_holder_lost_and_no_layout_on_what_is_left_the_job_gives_its_devices_back_and_waits_saying_why()
    {
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        foreach (var unit in job.Units.Cast<FakeUnit>()) unit.Dead = true;
        job.Gone.UnionWith(["a", "b"]);

        Assert.False(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(new ReplanChange(ReplanCause.Failure, "both silos died")));

        Assert.Empty(job.Units);
        Assert.Empty(job.Prepared);
        var waiting = Assert.Single(job.Events(JobEventKinds.Replanned));
        Assert.Contains("no layout runs on the devices left", waiting.Message);
        Assert.Contains("it has no checkpoint yet, and the job waits for devices", waiting.Message);
    }

    [Fact]
    public async Task When_every_attempt_fails_the_job_keeps_its_state_in_a_checkpoint_stops_its_plan_and_plans_again_instead_of_failing()
    {
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        job.OnPrepare = (_, _) => throw new JobFailure("preparing the new units failed: rank 1 did not connect to rank 0 within 10 s");
        job.Gone.Add("b");
        var leaving = new ReplanChange(ReplanCause.Leave, "silo b is draining") { Leaving = [job.Device("b")] };

        Assert.False(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System).Replan(leaving));

        Assert.Equal(3, job.Prepared.Count);
        var failures = job.Events(JobEventKinds.ReplanFailed).Select(e => e.Message).ToList();
        Assert.Equal(3, failures.Count);
        Assert.EndsWith("; the job stops its plan and plans again", failures[2]);
        Assert.Empty(job.Units);
        // It says why it stops and where its state is; the job then plans again from there (declaring any step it cannot keep).
        var stopped = job.Events(JobEventKinds.Replanned).Last().Message;
        Assert.Contains("the re-plan failed 3 times", stopped);
        Assert.Contains("the job waits for devices", stopped);
    }
}
