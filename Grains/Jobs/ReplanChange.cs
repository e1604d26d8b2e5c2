using Elastic.GrainInterfaces;
using Elastic.Parallelism;

namespace Elastic.Grains.Jobs;

/// <summary>Why a job re-plans; counted apart in its status (preemptions and failures).</summary>
public enum ReplanCause
{
    Join,
    Leave,
    Preemption,
    Failure,
    /// <summary>A user asked for a layout (`elastic replan`).</summary>
    Request,
    /// <summary>The job shrinks to give devices to a higher-priority job that waits for them (see FairShare).</summary>
    FairShare,
}

/// <summary>Why the job re-plans, and what happened, for the event.</summary>
public sealed record ReplanChange(ReplanCause Cause, string Detail)
{
    /// <summary>Devices on their way out (draining silos): still answering, but not where state should be written from.</summary>
    public IReadOnlyList<DeviceSlot> Leaving { get; init; } = [];

    /// <summary>The layout to move to (asked for, or a better one found on new devices); null: the planner's best on the devices left.</summary>
    public Layout? Target { get; init; }

    /// <summary>
    /// A coordinator took over (its predecessor stepped down or was lost), maybe in the middle of a re-plan: state the
    /// predecessor parked on the devices of the recorded plan's replicas is looked for on the silos.
    /// </summary>
    public bool TakeOver { get; init; }

    /// <summary>The cause as the job's events name it.</summary>
    public string CauseName => Cause switch
    {
        ReplanCause.Join => "join",
        ReplanCause.Leave => "leave",
        ReplanCause.Preemption => "preemption",
        ReplanCause.Request => "requested",
        ReplanCause.FairShare => "fair share",
        _ => "failure",
    };
}
