namespace Elastic.Benchmarks.Chaos;

/// <summary>The faults a chaos run throws at a cluster.</summary>
public enum FaultKind
{
    /// <summary>kill -9 of a silo process (the job coordinators' too); it is started again after a while, like a replaced VM.</summary>
    Kill,
    /// <summary>SIGSTOP for <see cref="Fault.Duration"/>, then SIGCONT: a silo that hangs (long enough, it is declared dead and must leave).</summary>
    Pause,
    /// <summary>SIGTERM: a graceful drain, then the silo leaves; started again later.</summary>
    Drain,
    /// <summary>A Preempt in the silo's Scheduled Events: 30 s notice, the silo drains and leaves.</summary>
    EvictionNotice,
    /// <summary>Every storage request answered 503 Server Busy for the duration.</summary>
    StorageUnavailable,
    /// <summary>Every storage exchange slowed for the duration.</summary>
    StorageLatency,
    /// <summary>Storage connections reset for the duration.</summary>
    StorageResets,
    /// <summary>One silo cut off from storage (nothing moves) for the duration.</summary>
    StorageCutOff,
    /// <summary>One silo's data-plane connections reset.</summary>
    DataPlaneReset,
    /// <summary>One silo's data-plane traffic held for the duration.</summary>
    DataPlaneStall,
    /// <summary>The API process killed and started again.</summary>
    ApiRestart,
    /// <summary>A job submitted again with its idempotency key: the same job must come back.</summary>
    DuplicateSubmission,
    /// <summary>A chunk of a job's newest checkpoint damaged, then the job cancelled and resumed: it must fall back to an older one.</summary>
    DamagedCheckpoint,
}

/// <param name="At">When, from the start of the fault window.</param>
/// <param name="Target">The silo (silo faults, storage cut-off, data-plane faults) or the job slot (submissions, checkpoints); -1: everything.</param>
/// <param name="Duration">How long it lasts (pauses, storage and data-plane faults) or how long a silo stays down (kills, drains, evictions).</param>
public sealed record Fault(TimeSpan At, FaultKind Kind, int Target, TimeSpan Duration)
{
    /// <summary>Faults that take a silo out of the cluster: at most one of them is in effect at a time.</summary>
    public bool TakesSiloDown => Kind is FaultKind.Kill or FaultKind.Pause or FaultKind.Drain or FaultKind.EvictionNotice;

    public override string ToString() => $"{At.TotalSeconds,7:F1} s  {Kind}{(Target >= 0 ? $" #{Target}" : "")}{(Duration > TimeSpan.Zero ? $" for {Duration.TotalSeconds:F0} s" : "")}";
}

/// <param name="At">When it was applied, on the run's clock.</param>
/// <param name="Silo">The endpoint (<c>127.0.0.1:PORT</c>) of the silo process a kill or a pause hit: one that may not come back.</param>
public sealed record AppliedFault(TimeSpan At, Fault Fault, string? Silo = null);
