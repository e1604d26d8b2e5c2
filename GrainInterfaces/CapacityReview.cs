namespace Elastic.GrainInterfaces;

/// <summary>Why devices a job holds are leaving.</summary>
public enum LeaveKind
{
    None,
    /// <summary>Their silo is stopping gracefully.</summary>
    Draining,
    /// <summary>Their silo's VM has an eviction notice.</summary>
    Preempted,
    /// <summary>Their silo is gone from the cluster without draining (crashed, killed, or declared dead).</summary>
    Lost,
}

/// <summary>
/// What the capacity grain tells a running job at a step boundary: devices it holds that are leaving (why, in words
/// and as the most severe <see cref="LeaveKind"/>), and the widest acceptable plan it could have with what it holds
/// plus the free devices and its fair share. <see cref="Yield"/>: why its share is now below what it holds (a higher-priority
/// job waits for devices), so it shrinks at this step boundary. <see cref="Offer"/>: per silo, the devices the job could hold
/// (its own that stay, and the free ones), and <see cref="Cap"/> its fair share in devices: what the planner chooses a layout on.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.CapacityReview")]
public sealed record CapacityReview(
    [property: Id(0)] IReadOnlyList<DeviceSlot> Leaving,
    [property: Id(1)] string? LeavingReason,
    [property: Id(2)] int WidestPlan,
    [property: Id(3)] LeaveKind Kind,
    [property: Id(4)] string? Yield = null,
    [property: Id(5)] IReadOnlyList<SiloOffer>? Offer = null,
    [property: Id(6)] int Cap = int.MaxValue,
    [property: Id(7)] JobShare? Share = null);
