using System.Net;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;

namespace Elastic.Tests.Coordination;

/// <summary>
/// The re-plan decision without a cluster: which holders keep their state where it lies, which stage it in host memory
/// and serve, who receives, and when nothing that can deliver the state is left.
/// </summary>
public sealed class ReplanDecisionTests
{
    private static readonly DeviceSlot[] A = Silo(1), B = Silo(2);

    private static DeviceSlot[] Silo(int port) =>
        [.. Enumerable.Range(0, 4).Select(d => new DeviceSlot(SiloAddress.New(IPAddress.Loopback, port, 1), d, $"127.0.0.1:{port}"))];

    private static StateHolder Live(long? steps, params DeviceSlot[] devices) => new(devices, HolderKind.Live, steps);

    [Fact]
    public void Holders_behind_the_newest_checkpoint_deliver_nothing_and_with_none_as_far_the_state_comes_from_the_checkpoint()
    {
        // Units prepared but never given the state answer at step 0: the checkpoint of step 110 is further.
        var fresh = ReplanDecision.Make([Live(0, A[0]), Live(0, A[1])], [A[0], A[1]], replicaSize: 1, floor: 110);
        Assert.Null(fresh.SourceSteps);
        Assert.Empty(fresh.Needy);

        // One holder as far as the checkpoint: it serves, the one behind receives.
        var mixed = ReplanDecision.Make([Live(112, A[0]), Live(0, A[1])], [A[0], A[1]], replicaSize: 1, floor: 110);
        Assert.Equal(112, mixed.SourceSteps);
        Assert.Equal([1], mixed.Needy);
        Assert.Equal([0], mixed.KeptSources);
    }

    [Fact]
    public void A_holder_past_the_committed_steps_delivers_nothing_even_adopted_where_it_lies()
    {
        // State a lost coordinator parked after two steps it never recorded: nothing can commit steps 6 and 7 now.
        var parked = new StateHolder([A[0]], HolderKind.Parked, 7);
        var d = ReplanDecision.Make([parked, Live(5, A[1])], [A[0], A[1]], replicaSize: 1, ceiling: 5);
        Assert.Equal(5, d.SourceSteps);
        Assert.Equal([0, 1], d.AdoptedFrom);
        Assert.Equal([0], d.Needy);
        Assert.Equal([1], d.KeptSources);

        // Alone, it leaves the job to its checkpoint.
        Assert.Null(ReplanDecision.Make([parked], [A[0]], replicaSize: 1, ceiling: 5).SourceSteps);
    }

    [Fact]
    public void Shrinking_dp_keeps_the_survivors_on_their_devices_and_moves_nothing()
    {
        var holders = new[] { Live(10, A[0], A[1]), Live(null, B[0], B[1]) };

        var d = ReplanDecision.Make(holders, [A[0], A[1]], replicaSize: 2);

        Assert.Equal(10, d.SourceSteps);
        Assert.Equal([0], d.AdoptedFrom);
        Assert.Equal([0], d.HandOver);
        Assert.Empty(d.Needy);
        Assert.Empty(d.Staged);
        Assert.Empty(d.Release);
    }

    [Fact]
    public void Growing_dp_sends_to_the_new_replica_from_the_kept_one()
    {
        var d = ReplanDecision.Make([Live(10, A[0], A[1])], [A[0], A[1], B[0], B[1]], replicaSize: 2);

        Assert.Equal([0, -1], d.AdoptedFrom);
        Assert.Equal([0], d.KeptSources);
        Assert.Equal([1], d.Needy);
        Assert.Empty(d.Stage);
    }

    [Fact]
    public void A_replica_of_another_shape_on_the_same_devices_receives_instead_of_adopting()
    {
        // pp 2 x tp 1 -> pp 1 x tp 2 on the same two devices, in the same order: a device's stage state is not a tensor shard.
        var holders = new[] { Live(10, A[0], A[1]) };

        var d = ReplanDecision.Make(holders, [A[0], A[1]], replicaSize: 2, sameShape: false);

        Assert.Equal([-1], d.AdoptedFrom);
        Assert.Equal([0], d.Staged);
        Assert.Equal([0], d.Needy);
        Assert.Empty(d.HandOver);
    }

    [Fact]
    public void Changing_tp_stages_every_old_replica_and_every_new_one_receives()
    {
        // dp 2 x tp 2 on silo A -> dp 1 x tp 4 on the same devices: no group is the same, so none is kept.
        var holders = new[] { Live(10, A[0], A[1]), Live(10, A[2], A[3]) };

        var d = ReplanDecision.Make(holders, A, replicaSize: 4);

        Assert.Equal([-1], d.AdoptedFrom);
        Assert.Equal([0, 1], d.Stage);
        Assert.Equal([0, 1], d.Staged);
        Assert.Empty(d.KeptSources);
        Assert.Equal([0], d.Needy);
        Assert.Empty(d.Release);
    }

    [Fact]
    public void A_survivor_behind_the_others_is_kept_but_receives_and_does_not_serve()
    {
        var holders = new[] { Live(9, A[0]), Live(10, A[1]), Live(10, A[2]) };

        var d = ReplanDecision.Make(holders, [A[0], A[1]], replicaSize: 1);

        Assert.Equal(10, d.SourceSteps);
        Assert.Equal([0, 1], d.AdoptedFrom);
        Assert.Equal([1], d.KeptSources);
        Assert.Equal([0], d.Needy);
        // The replica at step 10 leaving the plan serves too: two sources in parallel.
        Assert.Equal([2], d.Staged);
    }

    [Fact]
    public void Units_on_leaving_devices_serve_only_when_nothing_else_has_the_state()
    {
        var staying = ReplanDecision.Make([Live(10, A[0]), Live(10, B[0]) with { Leaving = true }], [A[0], A[1]], replicaSize: 1);
        Assert.Empty(staying.Staged);
        Assert.Equal([1], staying.Release);

        var onlyLeaving = ReplanDecision.Make([Live(10, B[0]) with { Leaving = true }], [A[0]], replicaSize: 1);
        Assert.Equal([0], onlyLeaving.Staged);
        Assert.Equal([0], onlyLeaving.Needy);
    }

    [Fact]
    public void State_parked_by_a_failed_attempt_is_adopted_again_on_its_devices()
    {
        // The first attempt handed replica 0's state over on A[0..1] and staged replica 1, then a prepare failed.
        var holders = new[] { new StateHolder([A[0], A[1]], HolderKind.Parked, 10), new StateHolder([B[0], B[1]], HolderKind.Staged, 10) };

        var d = ReplanDecision.Make(holders, [A[0], A[1], A[2], A[3]], replicaSize: 2);

        Assert.Equal(10, d.SourceSteps);
        Assert.Equal([0, -1], d.AdoptedFrom);
        Assert.Empty(d.HandOver); // already on its devices
        Assert.Empty(d.Stage); // already in host memory
        Assert.Equal([1], d.Staged);
        Assert.Equal([0], d.KeptSources);
        Assert.Equal([1], d.Needy);
    }

    [Fact]
    public void Parked_state_no_new_replica_adopts_is_unparked_to_serve_even_on_leaving_devices_when_nothing_else_has_it()
    {
        var d = ReplanDecision.Make([new StateHolder([A[0]], HolderKind.Parked, 10, Leaving: true), Live(null, A[1])], [B[0]], replicaSize: 1);

        Assert.Equal(10, d.SourceSteps);
        Assert.Equal([0], d.Unpark);
        Assert.Equal([0], d.Staged);
        Assert.Empty(d.Stage);
        Assert.Equal([0], d.Needy);
    }

    [Fact]
    public void Parked_state_on_leaving_devices_is_left_alone_when_a_replica_that_stays_has_the_same_step()
    {
        var d = ReplanDecision.Make([new StateHolder([A[0]], HolderKind.Parked, 10, Leaving: true), Live(10, B[0])], [B[0], B[1]], replicaSize: 1);

        Assert.Empty(d.Unpark);
        Assert.Equal([0], d.KeptSources);
        Assert.Equal([1], d.Needy);
        Assert.Empty(d.Release); // parked state has no unit to release: the next unit on its device frees it
    }

    [Fact]
    public void Partitioned_state_is_served_by_every_holder_even_one_on_leaving_devices()
    {
        // ZeRO dp 2 -> 1 on a notice: the leaving replica has the only copy of its part of the moments.
        var holders = new[] { Live(10, A[0]), Live(10, B[0]) with { Leaving = true } };

        var d = ReplanDecision.Make(holders, [A[0]], replicaSize: 1, sameShape: false, partitioned: true);

        Assert.Equal(10, d.SourceSteps);
        Assert.Equal([0, 1], d.Staged);
        Assert.Equal([0], d.Needy);
        Assert.False(d.PartLost);
    }

    [Fact]
    public void Partitioned_state_with_a_holder_lost_comes_from_the_checkpoint_and_says_a_part_was_lost()
    {
        var holders = new[] { Live(10, A[0]), Live(null, B[0]), Live(10, A[1]) };

        var d = ReplanDecision.Make(holders, [A[0], A[1]], replicaSize: 1, sameShape: false, partitioned: true);

        Assert.Null(d.SourceSteps);
        Assert.True(d.PartLost);
        Assert.Empty(d.Needy);
        Assert.Equal([0, 2], d.Release);
    }

    [Fact]
    public void Under_expert_parallelism_a_replica_adopts_only_a_holder_of_its_own_experts_and_every_holder_serves()
    {
        // dp 4 ep 2 (parts 0 1 0 1) loses replica 1; the new dp 2 ep 2 plan puts replica 1 on replica 3's devices, replica 0 on replica 0's.
        var holders = new[] { Live(10, A[0]) with { ExpertPart = 0 }, Live(null, A[1]) with { ExpertPart = 1 }, Live(10, B[0]) with { ExpertPart = 0 }, Live(10, B[1]) with { ExpertPart = 1 } };

        var kept = ReplanDecision.Make(holders, [A[0], B[1]], replicaSize: 1, experts: (2, 2));
        // Replica 0 of the new plan keeps part 0 on A0; replica 1 (part 1) keeps part 1 on B1.
        Assert.Equal([0, 3], kept.AdoptedFrom);
        Assert.False(kept.PartLost);

        // With the devices swapped, B1 (part 1) would be replica 0 (part 0): it receives instead of adopting.
        var swapped = ReplanDecision.Make(holders, [B[1], A[0]], replicaSize: 1, experts: (2, 2));
        Assert.Equal([-1, -1], swapped.AdoptedFrom);
        Assert.Equal([0, 1], swapped.Needy);
        Assert.Equal([0, 2, 3], swapped.Staged);
        Assert.Equal(10, swapped.SourceSteps);
    }

    [Fact]
    public void Under_expert_parallelism_losing_every_holder_of_some_experts_sends_the_job_to_its_checkpoint()
    {
        // dp 2 ep 2: replica 1 hosted the only copy of part 1.
        var holders = new[] { Live(10, A[0]) with { ExpertPart = 0 }, Live(null, B[0]) with { ExpertPart = 1 } };

        var d = ReplanDecision.Make(holders, [A[0], A[1]], replicaSize: 1, sameShape: false, experts: (2, 2));

        Assert.True(d.PartLost);
        Assert.Null(d.SourceSteps);
        Assert.Empty(d.Needy);
    }

    [Fact]
    public void Devices_that_are_not_whole_replicas_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => ReplanDecision.Make([], [A[0], A[1], A[2]], replicaSize: 2));
        Assert.Contains("3 device(s) are not whole replicas of 2", e.Message);
    }
}
