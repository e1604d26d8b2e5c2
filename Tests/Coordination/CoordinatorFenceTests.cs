using System.Collections.Immutable;
using System.Net;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Units.Replicas;

namespace Elastic.Tests.Coordination;

/// <summary>
/// A coordinator on a silo that was paused past its death sentence wakes and, for a moment, goes on: calls it makes carry
/// its silo, and a silo that knows it dead refuses them, so it cannot hand over or step the units its successor adopts.
/// </summary>
public sealed class CoordinatorFenceTests
{
    private static readonly SiloAddress Dead = SiloAddress.New(IPAddress.Loopback, 11111, 1);
    private static readonly SiloAddress Live = SiloAddress.New(IPAddress.Loopback, 11112, 1);
    private static readonly SiloAddress Stopping = SiloAddress.New(IPAddress.Loopback, 11114, 1);

    private static readonly ClusterMembershipSnapshot Membership = new(ImmutableDictionary<SiloAddress, ClusterMember>.Empty
        .Add(Dead, new ClusterMember(Dead, SiloStatus.Dead, "paused"))
        .Add(Live, new ClusterMember(Live, SiloStatus.Active, "live"))
        .Add(Stopping, new ClusterMember(Stopping, SiloStatus.ShuttingDown, "draining")), new MembershipVersion(7));

    [Fact]
    public void A_call_from_a_coordinator_on_a_dead_or_stopping_silo_is_refused_naming_it_and_others_go_on()
    {
        try
        {
            CoordinatorFence.Mark(Dead);
            Assert.Equal(Dead, CoordinatorFence.Caller());
            Assert.Equal($"Handover refused: the coordinator that asked runs on {Dead}, which is declared dead",
                DeadCoordinatorFilter.Refusal(CoordinatorFence.Caller(), Membership, "Handover"));
            // One that stepped down as its silo stops has handed the job over: it may not act on it any more either.
            Assert.Equal($"RunStep refused: the coordinator that asked runs on {Stopping}, which is shutting down",
                DeadCoordinatorFilter.Refusal(Stopping, Membership, "RunStep"));

            CoordinatorFence.Mark(Live);
            Assert.Null(DeadCoordinatorFilter.Refusal(CoordinatorFence.Caller(), Membership, "RunStep"));
            // Not a coordinator's call, or a silo this view has not heard of yet (a new one): neither is refused.
            Assert.Null(DeadCoordinatorFilter.Refusal(null, Membership, "Digest"));
            Assert.Null(DeadCoordinatorFilter.Refusal(SiloAddress.New(IPAddress.Loopback, 11113, 2), Membership, "Prepare"));
        }
        finally
        {
            RequestContext.Clear();
        }
    }

    [Fact]
    public async Task A_refused_unit_call_makes_the_coordinator_step_down_instead_of_failing_the_job()
    {
        var devices = new[] { new DeviceSlot(Live, 0, "127.0.0.1:1"), new DeviceSlot(Live, 1, "127.0.0.1:2") };
        Task[] calls = [Task.CompletedTask, Task.FromException(new CoordinatorFencedException("RunStep refused: the coordinator that asked runs on a silo declared dead"))];

        var refused = await Assert.ThrowsAsync<CoordinatorFencedException>(() => UnitCalls.OnAll(devices, calls, "step 9"));

        Assert.True(CoordinatorFence.Replaced(refused));
        Assert.True(CoordinatorFence.Replaced(new StaleCoordinatorException("the stored record moved on")));
        // Any other unit failure is the job's, named with its unit.
        var failure = await Assert.ThrowsAsync<JobFailure>(() => UnitCalls.OnAll(devices, [Task.CompletedTask, Task.FromException(new TimeoutException("no answer"))], "step 9"));
        Assert.False(CoordinatorFence.Replaced(failure));
        Assert.Contains("unit 1", failure.Message);
    }
}
