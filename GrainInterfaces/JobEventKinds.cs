namespace Elastic.GrainInterfaces;

/// <summary>The kinds of <see cref="JobEvent"/> a job records, as they appear in `elastic events` and the SDK.</summary>
public static class JobEventKinds
{
    public const string Submitted = "submitted";
    public const string Resumed = "resumed";
    public const string Waiting = "waiting";
    public const string Planned = "planned";
    /// <summary>The job moved to a new plan (or, below its minimum, stopped to wait for devices); the message says why, how and what it cost.</summary>
    public const string Replanned = "replanned";
    public const string ReplanFailed = "replan-failed";
    public const string ReplanRequested = "replan-requested";
    public const string ReplanRefused = "replan-refused";
    /// <summary>New devices could run a better layout, but the move was weighed and not worth it; the message says what was weighed.</summary>
    public const string ReplanDeclined = "replan-declined";
    /// <summary>What a plan's groups that span GPUs of several processes send tensors over: NCCL where every rank has it, frames otherwise, and why.</summary>
    public const string DeviceTransport = "device-transport";
    public const string CoordinatorMoved = "coordinator-moved";
    public const string CoordinatorRecovered = "coordinator-recovered";
    public const string CheckpointRequested = "checkpoint-requested";
    public const string Checkpoint = "checkpoint";
    public const string CheckpointFailed = "checkpoint-failed";
    public const string CheckpointUnreadable = "checkpoint-unreadable";
    /// <summary>The checkpoint store did not answer while the job read a checkpoint to come back from; it tries again, for up to <c>Jobs:StoreOutagePatience</c>.</summary>
    public const string CheckpointStoreUnavailable = "checkpoint-store-unavailable";
    public const string CancelRequested = "cancel-requested";
    /// <summary>A MoE layer's busiest expert stayed above model.moe.imbalanceAlert times the mean load for <c>ImbalanceSteps</c> committed steps (and when it came back).</summary>
    public const string ExpertsImbalanced = "experts-imbalanced";
    public const string ExpertsBalanced = "experts-balanced";
    public const string Exported = "exported";
    public const string Saved = "saved";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
}
