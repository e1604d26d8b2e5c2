namespace Elastic.Grains.Jobs;

/// <summary>How jobs are driven.</summary>
public sealed class JobOptions
{
    /// <summary>A collective (or a data-plane join) that takes longer fails the step: a dead or stalled peer surfaces within this bound.</summary>
    public TimeSpan CollectiveTimeout { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>How long the units of a new plan wait for each other to join their data-parallel group: a unit that failed to prepare is noticed then.</summary>
    public TimeSpan JoinTimeout { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>How often a job waiting for devices asks for them again.</summary>
    public TimeSpan CapacityPollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>How long a write that must land before the job goes on (a new plan, the end) waits for the job store to come back.</summary>
    public TimeSpan StoreOutagePatience { get; set; } = TimeSpan.FromMinutes(2);
    /// <summary>A running job's progress reaches the job store, and so what the job shows, at most this often (plans and ends are written at once).</summary>
    public TimeSpan RecordInterval { get; set; } = TimeSpan.FromMilliseconds(250);
    /// <summary>A job re-plans to grow no sooner than this after its last re-plan (shrinking, forced by a leaving device, never waits).</summary>
    public TimeSpan MinDwell { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>New devices must have been free this long before a job grows onto them, so that silos joining together are taken in one re-plan.</summary>
    public TimeSpan JoinSettle { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// How often a reminder wakes the coordinator of a job that has not ended: one lost with its silo while the job held no
    /// devices (waiting for capacity) comes back by itself within this, without a client call.
    /// </summary>
    public TimeSpan WakePeriod { get; set; } = TimeSpan.FromMinutes(1);
    /// <summary>A step that fails this many times in a row, re-planned after each, fails the job (a failure no new plan cures).</summary>
    public int MaxStepFailures { get; set; } = 5;
    /// <summary>How long a re-plan waits for a replica to say how far it got; one that does not answer is taken as lost.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>A job grows onto new devices only for a layout predicted at least this much faster (0.1: 10 %), so joins and leaves in turn do not make it flap.</summary>
    public double MinReplanGain { get; set; } = 0.1;
    /// <summary>How long new devices are expected to stay before a job has seen any churn of its own (then: the median time between its re-plans).</summary>
    public TimeSpan ExpectedStay { get; set; } = TimeSpan.FromMinutes(10);
}
