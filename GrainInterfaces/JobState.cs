namespace Elastic.GrainInterfaces;

/// <summary>Where a job is in its life. Completed, Failed and Cancelled are terminal.</summary>
[GenerateSerializer, Alias("Elastic.JobState")]
public enum JobState
{
    Pending,
    Planning,
    Running,
    Completed,
    Failed,
    Cancelled,
}

public static class JobStates
{
    public static bool IsTerminal(this JobState state) => state is JobState.Completed or JobState.Failed or JobState.Cancelled;
}
