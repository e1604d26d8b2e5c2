using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;

namespace Elastic.Units.Replicas;

/// <summary>
/// Refuses a call a job's coordinator made from a silo this silo's membership view has declared dead, or sees shutting down
/// (see <see cref="CoordinatorFence"/>): its coordinator has been replaced, or is about to be (one that steps down hands the
/// job over), and whatever it asks now would undo what the new one adopts.
/// </summary>
public sealed class DeadCoordinatorFilter(IClusterMembershipService membership) : IIncomingGrainCallFilter
{
    public Task Invoke(IIncomingGrainCallContext context) =>
        Refusal(CoordinatorFence.Caller(), membership.CurrentSnapshot, context.InterfaceMethod?.Name ?? "a call") is { } refusal
            ? throw new CoordinatorFencedException(refusal)
            : context.Invoke();

    /// <summary>Why a call from a coordinator on <paramref name="caller"/> is refused, or null when it may go on.</summary>
    public static string? Refusal(SiloAddress? caller, ClusterMembershipSnapshot membership, string call) =>
        caller is not null && membership.GetSiloStatus(caller) is var status && status.IsTerminating()
            ? $"{call} refused: the coordinator that asked runs on {caller}, which is {(status == SiloStatus.Dead ? "declared dead" : "shutting down")}"
            : null;
}
