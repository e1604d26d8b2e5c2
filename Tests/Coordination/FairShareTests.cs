using Elastic.GrainInterfaces;
using Elastic.Grains.Scheduling;

namespace Elastic.Tests.Coordination;

/// <summary>
/// The scheduling policy on its own: priorities, the queue, elastic fair share (lower-priority jobs shrink to their minimum
/// for a waiting job, and only for one; equals share by tenant weight), tenant quotas, and growth into what is free.
/// </summary>
public sealed class FairShareTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 9, 0, 0, TimeSpan.Zero);

    private static JobClaim Job(string id, int priority, int minute, int held, int[] widths, string tenant = "team-a") =>
        new(id, new JobStanding(tenant, priority, Start.AddMinutes(minute)), widths, held);

    private static Dictionary<string, JobShare> Decide(int devices, SchedulingOptions? options, params JobClaim[] claims) =>
        FairShare.Decide(devices, claims, options ?? new SchedulingOptions()).ToDictionary(s => s.JobId);

    [Fact]
    public void A_waiting_higher_priority_job_shrinks_lower_ones_newest_first_never_below_their_minimum()
    {
        var shares = Decide(8, null,
            Job("old", 0, minute: 0, held: 4, widths: [4, 2]),
            Job("new", 0, minute: 1, held: 4, widths: [4, 2, 1]),
            Job("urgent", 5, minute: 2, held: 0, widths: [4, 2]));

        Assert.Equal(4, shares["urgent"].Cap);
        Assert.Equal(1, shares["urgent"].Position);
        // The newest lower job gives first, down to a width it accepts; the older one gives the rest, down to its minimum 2.
        // The newest gave whole widths (4 -> 1) beyond the need and takes the excess back (1 -> 2).
        Assert.Equal((2, 2), (shares["old"].Cap, shares["new"].Cap));
        Assert.Equal("yields 2 device(s) to job urgent (priority 5)", shares["new"].Note);
        Assert.Equal("yields 2 device(s) to job urgent (priority 5)", shares["old"].Note);
        Assert.Equal("job old (priority 0) shrinks from 4 to 2 device(s) and job new (priority 0) shrinks from 4 to 2 device(s) to make room", shares["urgent"].Note);
        Assert.Equal(8, shares.Values.Sum(s => s.Cap));
    }

    [Fact]
    public void Free_devices_are_taken_first_and_a_lower_job_shrinks_only_by_what_is_still_needed()
    {
        var shares = Decide(6, null,
            Job("low", 0, minute: 0, held: 4, widths: [4, 2, 1]),
            Job("high", 3, minute: 1, held: 0, widths: [4, 2]));

        Assert.Equal((4, 2), (shares["high"].Cap, shares["low"].Cap));
        Assert.Equal("yields 2 device(s) to job high (priority 3)", shares["low"].Note);
    }

    [Fact]
    public void A_waiting_job_of_equal_priority_takes_its_share_from_a_job_holding_the_whole_cluster()
    {
        var shares = Decide(4, null,
            Job("first", 1, minute: 0, held: 4, widths: [4, 2, 1]),
            Job("second", 1, minute: 1, held: 0, widths: [2, 1], tenant: "team-b"));

        Assert.Equal((2, 2), (shares["first"].Cap, shares["second"].Cap));
        Assert.Equal("yields 2 device(s) to job second (priority 1)", shares["first"].Note);
        Assert.Equal("job first (priority 1) shrinks from 4 to 2 device(s) to make room", shares["second"].Note);
    }

    [Fact]
    public void Equals_share_by_tenant_weighted_by_quota_and_a_tenants_jobs_split_its_part()
    {
        // Quotas 12 and 4 weigh 3:1 on 8 devices: team-a's part is 6, team-b's 2.
        var quotas = new SchedulingOptions { TenantDevices = new Dictionary<string, int> { ["team-a"] = 12, ["team-b"] = 4 } };
        var weighted = Decide(8, quotas,
            Job("a", 0, minute: 0, held: 8, widths: [8, 6, 4, 2]),
            Job("b", 0, minute: 1, held: 0, widths: [4, 2, 1], tenant: "team-b"));
        Assert.Equal((6, 2), (weighted["a"].Cap, weighted["b"].Cap));

        // Without quotas the tenants weigh alike: team-a's half goes to its two jobs alike.
        var split = Decide(8, null,
            Job("a1", 0, minute: 0, held: 8, widths: [8, 4, 2, 1]),
            Job("a2", 0, minute: 1, held: 0, widths: [4, 2, 1]),
            Job("b1", 0, minute: 2, held: 0, widths: [4, 2, 1], tenant: "team-b"));
        Assert.Equal((2, 2, 4), (split["a1"].Cap, split["a2"].Cap, split["b1"].Cap));
        Assert.Equal(8, split.Values.Sum(s => s.Cap));
    }

    [Fact]
    public void What_an_equal_cannot_use_goes_to_the_others()
    {
        // Half of 8 each, but b accepts at most 2: a's share is the other 6 (max-min fair), so a keeps 6 of its 8.
        var shares = Decide(8, null,
            Job("a", 0, minute: 0, held: 8, widths: [8, 6, 4, 2]),
            Job("b", 0, minute: 1, held: 0, widths: [2, 1], tenant: "team-b"));

        Assert.Equal((6, 2), (shares["a"].Cap, shares["b"].Cap));
    }

    [Fact]
    public void An_equal_never_shrinks_below_its_minimum_and_a_job_that_would_need_it_waits_saying_so()
    {
        var shares = Decide(4, null,
            Job("first", 1, minute: 0, held: 4, widths: [4]),
            Job("second", 1, minute: 1, held: 0, widths: [2, 1], tenant: "team-b"));

        Assert.Equal((4, 0), (shares["first"].Cap, shares["second"].Cap));
        Assert.Null(shares["first"].Note);
        Assert.Equal("needs 1 device(s): 0 free, 0 held above their minimum by lower-priority jobs and 0 that jobs of its priority hold above their share", shares["second"].Note);
    }

    [Fact]
    public void A_running_job_below_its_share_takes_from_an_equal_above_its_share_and_the_split_then_stays()
    {
        var shares = Decide(4, null,
            Job("big", 0, minute: 0, held: 3, widths: [4, 3, 2, 1]),
            Job("small", 0, minute: 1, held: 1, widths: [4, 2, 1], tenant: "team-b"));
        Assert.Equal((2, 2), (shares["big"].Cap, shares["small"].Cap));
        Assert.Equal("yields 1 device(s) to job small (priority 0)", shares["big"].Note);

        // Once at their shares nothing moves: no flapping between equals.
        var settled = Decide(4, null,
            Job("big", 0, minute: 0, held: 2, widths: [4, 3, 2, 1]),
            Job("small", 0, minute: 1, held: 2, widths: [4, 2, 1], tenant: "team-b"));
        Assert.Equal((2, 2), (settled["big"].Cap, settled["small"].Cap));
        Assert.All(settled.Values, s => Assert.Null(s.Note));
    }

    [Fact]
    public void A_job_that_cannot_start_even_with_every_lower_job_at_its_minimum_shrinks_no_one_and_holds_the_queue_behind_it()
    {
        var shares = Decide(4, null,
            Job("running", 0, minute: 0, held: 4, widths: [4, 2]),
            Job("big", 5, minute: 1, held: 0, widths: [8, 4]),
            Job("small", 3, minute: 2, held: 0, widths: [1]));

        Assert.Equal(4, shares["running"].Cap);
        Assert.Equal((0, 1), (shares["big"].Cap, shares["big"].Position));
        Assert.Equal("needs 4 device(s): 0 free, 2 held above their minimum by lower-priority jobs and 0 that jobs of its priority hold above their share", shares["big"].Note);
        // No backfill: a small job does not start ahead of a larger one that waits longer or ranks higher.
        Assert.Equal((0, 2), (shares["small"].Cap, shares["small"].Position));
        Assert.Equal("queued behind job big (priority 5), which waits for devices", shares["small"].Note);
    }

    [Fact]
    public void A_job_needing_more_devices_than_the_cluster_has_waits_without_holding_up_the_queue()
    {
        var shares = Decide(4, null,
            Job("huge", 5, minute: 0, held: 0, widths: [8]),
            Job("small", 0, minute: 1, held: 0, widths: [2, 1]));

        Assert.Equal((0, "needs 8 device(s): the cluster has 4"), (shares["huge"].Cap, shares["huge"].Note));
        Assert.Equal((2, 2), (shares["small"].Cap, shares["small"].Position));
    }

    [Fact]
    public void The_queue_is_ordered_by_priority_then_submission()
    {
        var shares = FairShare.Decide(0, [
            Job("c", 0, minute: 0, held: 0, widths: [1]),
            Job("a", 2, minute: 5, held: 0, widths: [1]),
            Job("b", 2, minute: 3, held: 0, widths: [1]),
        ], new SchedulingOptions());

        Assert.Equal(["b", "a", "c"], shares.Select(s => s.JobId));
        Assert.Equal([1, 2, 3], shares.Select(s => s.Position!.Value));
    }

    [Fact]
    public void A_tenant_never_holds_more_than_its_quota_and_a_job_held_back_by_its_quota_blocks_no_one()
    {
        var quotas = new SchedulingOptions { TenantDevices = new Dictionary<string, int> { ["team-a"] = 4 }, DefaultTenantDevices = 6 };
        var shares = Decide(12, quotas,
            Job("a-running", 0, minute: 0, held: 4, widths: [8, 4, 2, 1]),
            Job("a-waiting", 5, minute: 1, held: 0, widths: [2, 1]),
            Job("b-waiting", 0, minute: 2, held: 0, widths: [8, 4, 2], tenant: "team-b"));

        Assert.Equal(0, shares["a-waiting"].Cap);
        Assert.Equal("tenant team-a may hold 4 device(s) (Elastic:Scheduling:TenantDevices:team-a) and its jobs hold 4", shares["a-waiting"].Note);
        // team-b's default quota is 6: its job takes 4 (its widest width within 6), and team-a's running job cannot grow.
        Assert.Equal(4, shares["b-waiting"].Cap);
        Assert.Equal(4, shares["a-running"].Cap);
    }

    [Fact]
    public void Running_jobs_grow_into_free_devices_in_priority_order_and_grow_back_when_the_job_they_yielded_to_ends()
    {
        var before = Decide(7, null,
            Job("low", 0, minute: 0, held: 2, widths: [8, 4, 2]),
            Job("high", 5, minute: 1, held: 4, widths: [8, 4]));
        // 1 free: neither can use it (their next widths are 2 and 4 wider).
        Assert.Equal((2, 4), (before["low"].Cap, before["high"].Cap));

        var after = Decide(8, null, Job("low", 0, minute: 0, held: 2, widths: [8, 4, 2]));
        Assert.Equal(8, after["low"].Cap);

        var shared = Decide(12, null,
            Job("low", 0, minute: 0, held: 2, widths: [8, 4, 2]),
            Job("high", 5, minute: 1, held: 4, widths: [8, 4]));
        // 6 free: the higher priority grows first (4 -> 8), the lower gets what is left (2 -> 4).
        Assert.Equal((4, 8), (shared["low"].Cap, shared["high"].Cap));
    }

    [Fact]
    public void A_running_job_does_not_shrink_for_a_running_job_of_higher_priority()
    {
        var shares = Decide(8, null,
            Job("low", 0, minute: 0, held: 4, widths: [4, 2, 1]),
            Job("high", 5, minute: 1, held: 4, widths: [8, 4]));

        Assert.Equal((4, 4), (shares["low"].Cap, shares["high"].Cap));
    }
}
