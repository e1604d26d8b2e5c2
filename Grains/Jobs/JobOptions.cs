namespace Elastic.Grains.Jobs;

/// <summary>How jobs are driven.</summary>
public sealed class JobOptions
{
    /// <summary>A collective (or a data-plane join) that takes longer fails the step: a dead or stalled peer surfaces within this bound.</summary>
    public TimeSpan CollectiveTimeout { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>How often a job waiting for devices asks for them again.</summary>
    public TimeSpan CapacityPollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>Persist the job's state every this many committed steps (and at every transition).</summary>
    public int PersistEverySteps { get; set; } = 10;
}
