using Elastic.Benchmarks.Chaos;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Tests.Chaos;

/// <summary>The chaos checker over histories made by hand: a clean one passes, and each broken invariant is named with its job and step.</summary>
public sealed class HistoryCheckerTests
{
    private static readonly TrainingSpec Spec = ChaosRun.Spec(0, 0, steps: 4);
    private static readonly Reference Fine = new([3.5, 3.25, 3.0, 2.75], "digest-a");

    /// <summary>A job that re-planned once (at 10 s, after a fault at 9 s) and completed with the reference's bits.</summary>
    private static JobHistory Clean()
    {
        var job = new JobHistory("job-1", Spec);
        Look(job, 1, JobState.Running, 1, (1, 3.5), (2, 3.25));
        Look(job, 10, JobState.Running, 2, events: [Replanned(2, "leave: generation 1 -> generation 2", 0)]);
        Look(job, 11, JobState.Running, 2, (3, 3.0));
        Look(job, 12, JobState.Completed, 2, (4, 2.75));
        job.Final = Status(JobState.Completed, 4, "digest-a");
        job.Report = Report([3.5, 3.25, 3.0, 2.75]);
        return job;
    }

    [Fact]
    public void A_history_that_keeps_every_promise_passes_and_gives_its_figures()
    {
        var fault = new Fault(TimeSpan.FromSeconds(9), FaultKind.Kill, 1, TimeSpan.FromSeconds(5));
        var (violations, figures) = HistoryChecker.Check([Clean()], _ => Fine, [new AppliedFault(TimeSpan.FromSeconds(9), fault)]);

        Assert.Empty(violations);
        Assert.Equal((1, 4L, 0L, 0), (figures.Jobs, figures.StepsCommitted, figures.StepsLost, figures.JobsFailed));
        // From the fault to the first step committed in the new generation.
        Assert.Equal([2.0], figures.RecoverySeconds);
    }

    [Fact]
    public void Growing_back_onto_a_returned_silo_is_not_counted_as_a_recovery()
    {
        var job = Clean();
        job.Events[2] = new JobEvent(2, DateTimeOffset.UnixEpoch, JobEventKinds.Replanned, "join: devices joined", new ReplanFields("join", "dp=1", "dp=2", 0.1, 0, 0));
        var fault = new Fault(TimeSpan.FromSeconds(9), FaultKind.Kill, 1, TimeSpan.FromSeconds(5));

        Assert.Empty(HistoryChecker.Check([job], _ => Fine, [new AppliedFault(TimeSpan.FromSeconds(9), fault)]).Figures.RecoverySeconds);
    }

    [Fact]
    public void A_step_seen_with_another_loss_or_a_loss_unlike_the_fault_free_run_is_named_with_its_step()
    {
        var job = Clean();
        job.Steps.Add((TimeSpan.FromSeconds(13), 3, 3.0000000000000004));

        var (violations, _) = HistoryChecker.Check([job], _ => Fine, []);

        Assert.Contains(violations, v => v.Invariant == "committed steps are never rewritten" && v.Step == 3 && v.JobId == "job-1");
        Assert.Contains(violations, v => v.Invariant == "every loss equals the fault-free run's" && v.Step == 3);
    }

    [Fact]
    public void The_committed_count_may_fall_only_right_after_an_event_that_declares_a_rewind()
    {
        var silent = Clean();
        silent.Observations.Insert(3, new Observation(TimeSpan.FromSeconds(11.5), JobState.Running, 2, 1, 2));
        Assert.Contains(HistoryChecker.Check([silent], _ => Fine, []).Violations,
            v => v.Invariant == "committed steps are never rewritten" && v.Detail.Contains("fell from 3 to 1"));

        var declared = Clean();
        declared.Events[3] = new JobEvent(3, DateTimeOffset.UnixEpoch, JobEventKinds.Resumed, "from the checkpoint of step 1; 2 committed step(s) after it will be trained again");
        declared.Observations.Insert(3, new Observation(TimeSpan.FromSeconds(11.5), JobState.Running, 2, 1, 3));
        var (violations, figures) = HistoryChecker.Check([declared], _ => Fine, []);
        Assert.Empty(violations);
        Assert.Equal(2, figures.StepsRetrainedAfterResume);
    }

    [Fact]
    public void A_generation_going_back_a_step_lost_to_a_fault_a_wrong_digest_and_a_job_that_failed_are_each_named()
    {
        var back = Clean();
        back.Observations.Add(new Observation(TimeSpan.FromSeconds(13), JobState.Completed, 1, 4, 2));
        var lost = Clean();
        lost.Events[3] = Replanned(3, "failure: generation 2 -> generation 3 from the latest checkpoint", 2);
        var digest = Clean();
        digest.Final = Status(JobState.Completed, 4, "digest-b");
        var failed = Clean();
        failed.Final = Status(JobState.Failed, 3, null, "replicas disagree on the loss");

        var violations = HistoryChecker.Check([back, lost, digest, failed], _ => Fine, []).Violations;

        Assert.Contains(violations, v => v.Invariant == "generations strictly increase" && v.Detail.Contains("generation 1 seen at 13.0 s after generation 2"));
        Assert.Contains(violations, v => v.Invariant == "no committed step is lost" && v.Detail.StartsWith("2 step(s) lost"));
        Assert.Contains(violations, v => v.Invariant == "the final digest equals the fault-free run's" && v.Detail == "digest-b, fault-free digest-a");
        Assert.Contains(violations, v => v.Invariant == "every job completes" && v.Detail.Contains("Failed: replicas disagree"));
    }

    [Fact]
    public void Steps_lost_because_faults_took_down_every_silo_of_the_plan_are_counted_apart_and_not_while_one_was_left()
    {
        History Lost(params string[] killed)
        {
            var job = new JobHistory("job-1", Spec);
            Look(job, 1, JobState.Running, 1, ["127.0.0.1:1001", "127.0.0.1:1002"], (1, 3.5), (2, 3.25));
            Look(job, 10, JobState.Running, 2, ["127.0.0.1:1003"], [Replanned(2, "failure: no replica kept the state: from the start", 2)]);
            Look(job, 11, JobState.Running, 2, ["127.0.0.1:1003"], (1, 3.5), (2, 3.25), (3, 3.0));
            Look(job, 12, JobState.Completed, 2, ["127.0.0.1:1003"], (4, 2.75));
            job.Final = Status(JobState.Completed, 4, "digest-a");
            job.Report = Report([3.5, 3.25, 3.0, 2.75]);
            var faults = killed.Select(s => new AppliedFault(TimeSpan.FromSeconds(5), new Fault(TimeSpan.FromSeconds(5), FaultKind.Kill, 0, TimeSpan.FromSeconds(5)), s)).ToList();
            return new(job, faults);
        }

        var everyReplica = Lost("127.0.0.1:1001", "127.0.0.1:1002");
        var (violations, figures) = HistoryChecker.Check([everyReplica.Job], _ => Fine, everyReplica.Faults);
        Assert.Empty(violations);
        Assert.Equal((0L, 2L), (figures.StepsLost, figures.StepsLostWithEveryReplica));

        var oneLeft = Lost("127.0.0.1:1001");
        (violations, figures) = HistoryChecker.Check([oneLeft.Job], _ => Fine, oneLeft.Faults);
        Assert.Contains(violations, v => v.Invariant == "no committed step is lost" && v.Detail.StartsWith("2 step(s) lost"));
        Assert.Equal((2L, 0L), (figures.StepsLost, figures.StepsLostWithEveryReplica));
    }

    [Fact]
    public void A_grow_that_never_finished_leaves_the_state_with_the_plan_before_it_and_one_that_stepped_holds_it_on_every_silo()
    {
        // Generation 2 adds silo 1002; its coordinator dies with 1001 before (or after) its units received the state.
        History Grown(bool stepped)
        {
            var job = new JobHistory("job-1", Spec);
            Look(job, 1, JobState.Running, 1, ["127.0.0.1:1001"], (1, 3.5));
            Look(job, 2, JobState.Running, 2, ["127.0.0.1:1001", "127.0.0.1:1002"]);
            if (stepped) Look(job, 3, JobState.Running, 2, ["127.0.0.1:1001", "127.0.0.1:1002"], (2, 3.25));
            Look(job, 6, JobState.Running, 3, ["127.0.0.1:1003"]);
            Look(job, 10, JobState.Running, 3, ["127.0.0.1:1003"], [Replanned(1, "failure: no replica survived: from the start", stepped ? 2 : 1)]);
            Look(job, 11, JobState.Running, 3, ["127.0.0.1:1003"], (1, 3.5), (2, 3.25), (3, 3.0));
            Look(job, 12, JobState.Completed, 3, ["127.0.0.1:1003"], (4, 2.75));
            job.Final = Status(JobState.Completed, 4, "digest-a");
            job.Report = Report([3.5, 3.25, 3.0, 2.75]);
            return new(job, [new AppliedFault(TimeSpan.FromSeconds(5), new Fault(TimeSpan.FromSeconds(5), FaultKind.Kill, 0, TimeSpan.FromSeconds(5)), "127.0.0.1:1001")]);
        }

        var unfinished = Grown(stepped: false);
        var (violations, figures) = HistoryChecker.Check([unfinished.Job], _ => Fine, unfinished.Faults);
        Assert.Empty(violations);
        Assert.Equal((0L, 1L), (figures.StepsLost, figures.StepsLostWithEveryReplica));

        var finished = Grown(stepped: true);
        (violations, figures) = HistoryChecker.Check([finished.Job], _ => Fine, finished.Faults);
        Assert.Contains(violations, v => v.Invariant == "no committed step is lost" && v.Detail.StartsWith("2 step(s) lost"));
        Assert.Equal((2L, 0L), (figures.StepsLost, figures.StepsLostWithEveryReplica));
    }

    private sealed record History(JobHistory Job, IReadOnlyList<AppliedFault> Faults);

    [Fact]
    public void A_report_with_a_gap_is_named()
    {
        var job = Clean();
        job.Report = Report([3.5, 3.25, 3.0, 2.75]) with { Steps = [.. Report([3.5, 3.25, 3.0, 2.75]).Steps.Where(s => s.Step != 2)] };

        Assert.Contains(HistoryChecker.Check([job], _ => Fine, []).Violations,
            v => v.Invariant == "committed steps increase by one" && v.Detail.Contains("holds 3 steps"));
    }

    private static void Look(JobHistory job, double seconds, JobState state, int generation, params (long Step, double Loss)[] steps) =>
        Look(job, seconds, state, generation, [], [], steps);

    private static void Look(JobHistory job, double seconds, JobState state, int generation, JobEvent[] events, params (long Step, double Loss)[] steps) =>
        Look(job, seconds, state, generation, [], events, steps);

    private static void Look(JobHistory job, double seconds, JobState state, int generation, string[] silos, params (long Step, double Loss)[] steps) =>
        Look(job, seconds, state, generation, silos, [], steps);

    private static void Look(JobHistory job, double seconds, JobState state, int generation, string[] silos, JobEvent[] events, params (long Step, double Loss)[] steps)
    {
        var committed = steps.Length > 0 ? steps.Max(s => s.Step) : job.Observations.LastOrDefault()?.Committed ?? 0;
        var devices = silos.Select(s => new DeviceSlot(SiloAddress.New(System.Net.IPEndPoint.Parse(s), 1), 0, s)).ToList();
        var plan = new ParallelPlan(generation, 1, 1, 1, devices);
        job.Record(TimeSpan.FromSeconds(seconds), new JobProgress(Status(state, committed, null) with { Plan = plan },
            steps.Select(s => new StepRecord(s.Step, s.Loss, 1e-3, 1, 100, 10)).ToList(), [], events));
    }

    private static JobEvent Replanned(long index, string message, long lost) =>
        new(index, DateTimeOffset.UnixEpoch, JobEventKinds.Replanned, message, new ReplanFields("leave", "dp=2", "dp=1", 0.1, lost, 0));

    private static JobStatus Status(JobState state, long committed, string? digest, string? error = null) =>
        new("job-1", "chaos", state, null, committed, 4, null, 0, error, DateTimeOffset.UnixEpoch, digest, null, false);

    private static RunReport Report(double[] losses) => new()
    {
        Spec = Spec, StartedAt = DateTimeOffset.UnixEpoch, Device = "cpu", ThreadsPerDevice = 1, Parameters = 1, HeldOut = [], Completed = true,
        WallSeconds = 1, TokensPerSecond = 1, FinalParameterDigest = "digest-a",
        Steps = losses.Select((l, i) => new StepRecord(i + 1, l, 1e-3, 1, 100, 10)).ToList(),
    };
}
