using System.Net;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Parallelism;

namespace Elastic.Tests.Coordination;

/// <summary>When a running job re-plans on its own, on a clock the test moves: leaving devices at once, asked-for layouts next, growth after settling and dwelling.</summary>
public sealed class ElasticityPolicyTests
{
    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly JobOptions Options = new() { MinDwell = TimeSpan.FromSeconds(10), JoinSettle = TimeSpan.FromSeconds(2) };

    private static readonly DeviceSlot[] Devices =
        [.. Enumerable.Range(0, 4).Select(d => new DeviceSlot(SiloAddress.New(IPAddress.Loopback, 1, 1), d, "127.0.0.1:1"))];

    private static readonly ParallelPlan TwoDevices = new(3, 2, 1, 1, Devices[..2]);

    private static CapacityReview Review(int widest, LeaveKind kind = LeaveKind.None, params DeviceSlot[] leaving) =>
        new(leaving, leaving.Length > 0 ? "the silo is stopping" : null, widest, kind);

    [Theory]
    [InlineData(LeaveKind.Draining, ReplanCause.Leave)]
    [InlineData(LeaveKind.Preempted, ReplanCause.Preemption)]
    [InlineData(LeaveKind.Lost, ReplanCause.Failure)]
    public void Leaving_devices_force_a_replan_at_once_whatever_the_dwell(LeaveKind kind, ReplanCause cause)
    {
        var policy = new ElasticityPolicy(Options, new Clock());

        var change = policy.Decide(Review(2, kind, Devices[1]), TwoDevices);

        Assert.Equal(cause, change!.Cause);
        Assert.Equal([Devices[1]], change.Leaving);
        Assert.Equal("the silo is stopping", change.Detail);
    }

    [Fact]
    public void Growth_waits_for_the_new_devices_to_settle_and_for_the_dwell_since_the_last_replan()
    {
        var clock = new Clock();
        var policy = new ElasticityPolicy(Options, clock);

        Assert.Null(policy.Decide(Review(4), TwoDevices)); // just appeared: settling
        clock.Now += TimeSpan.FromSeconds(3);
        Assert.Null(policy.Decide(Review(4), TwoDevices)); // settled, but only 3 s since the last re-plan
        clock.Now += TimeSpan.FromSeconds(7);
        var change = policy.Decide(Review(4), TwoDevices);

        Assert.Equal(ReplanCause.Join, change!.Cause);
        Assert.Equal("devices joined: 2 device(s) can grow to 4", change.Detail);
    }

    [Fact]
    public void Devices_that_go_away_again_before_settling_start_the_settling_over()
    {
        var clock = new Clock { };
        var policy = new ElasticityPolicy(Options, clock);
        clock.Now += TimeSpan.FromSeconds(20);
        Assert.Null(policy.Decide(Review(4), TwoDevices));
        clock.Now += TimeSpan.FromSeconds(1);
        Assert.Null(policy.Decide(Review(2), TwoDevices)); // gone again
        clock.Now += TimeSpan.FromSeconds(1.5);
        Assert.Null(policy.Decide(Review(4), TwoDevices)); // back: settling starts now, not 2.5 s ago
        clock.Now += TimeSpan.FromSeconds(2);
        Assert.NotNull(policy.Decide(Review(4), TwoDevices));
    }

    [Fact]
    public void A_replan_restarts_the_dwell()
    {
        var clock = new Clock();
        var policy = new ElasticityPolicy(Options, clock);
        clock.Now += TimeSpan.FromSeconds(30);
        policy.Replanned();
        Assert.Null(policy.Decide(Review(4), TwoDevices));
        clock.Now += TimeSpan.FromSeconds(5);
        Assert.Null(policy.Decide(Review(4), TwoDevices));
        clock.Now += TimeSpan.FromSeconds(5);
        Assert.NotNull(policy.Decide(Review(4), TwoDevices));
    }

    [Fact]
    public void A_requested_layout_is_taken_once_at_the_next_boundary_but_leaving_devices_come_first()
    {
        var policy = new ElasticityPolicy(Options, new Clock());
        policy.Request(new Layout(1, Tp: 2));

        Assert.Equal(ReplanCause.Leave, policy.Decide(Review(2, LeaveKind.Draining, Devices[0]), TwoDevices)!.Cause);
        var change = policy.Decide(Review(2), TwoDevices);
        Assert.Equal(ReplanCause.Request, change!.Cause);
        Assert.Equal("dp=1,pp=1,tp=2 asked for", change.Detail);
        Assert.Equal(new Layout(1, Tp: 2), change.Target);
        Assert.Null(policy.Decide(Review(2), TwoDevices));
    }

    [Fact]
    public void A_fair_share_below_what_the_job_holds_shrinks_it_at_once_before_a_requested_layout_and_whatever_the_dwell()
    {
        var policy = new ElasticityPolicy(Options, new Clock());
        policy.Replanned();
        policy.Request(new Layout(2));

        var change = policy.Decide(Review(1) with { Yield = "yields 1 device(s) to job urgent (priority 5)" }, TwoDevices);

        Assert.Equal(ReplanCause.FairShare, change!.Cause);
        Assert.Equal("yields 1 device(s) to job urgent (priority 5): 2 -> 1 device(s)", change.Detail);
        Assert.Null(change.Target); // the planner's best within the share
        Assert.Equal(ReplanCause.Request, policy.Decide(Review(2), TwoDevices)!.Cause);
    }

    [Fact]
    public void Once_settled_growth_goes_to_the_layout_found_worth_moving_to_and_not_at_all_when_none_is()
    {
        var clock = new Clock();
        var policy = new ElasticityPolicy(Options, clock);
        clock.Now += TimeSpan.FromSeconds(10);
        var asked = 0;

        Assert.Null(policy.Decide(Review(4), TwoDevices, () => { asked++; return null; })); // settling: not asked yet
        clock.Now += TimeSpan.FromSeconds(3);
        Assert.Null(policy.Decide(Review(4), TwoDevices, () => { asked++; return null; })); // asked: not worth moving
        var change = policy.Decide(Review(4), TwoDevices, () => (new Layout(2, Tp: 2), "dp=2,pp=1,tp=1 can become dp=2,pp=1,tp=2: faster"));

        Assert.Equal(1, asked);
        Assert.Equal(ReplanCause.Join, change!.Cause);
        Assert.Equal(new Layout(2, Tp: 2), change.Target);
        Assert.Equal("devices joined: dp=2,pp=1,tp=1 can become dp=2,pp=1,tp=2: faster", change.Detail);
    }
}
