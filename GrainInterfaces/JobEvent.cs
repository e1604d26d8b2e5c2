namespace Elastic.GrainInterfaces;

/// <summary>Something that happened to a job: a plan, a failure, a cancellation, completion. A re-plan carries its <see cref="Replan"/> fields.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.JobEvent")]
public sealed record JobEvent(
    [property: Id(0)] long Index,
    [property: Id(1)] DateTimeOffset Time,
    [property: Id(2)] string Kind,
    [property: Id(3)] string Message,
    [property: Id(4)] ReplanFields? Replan = null)
{
    public override string ToString() => $"{Time:HH:mm:ss} {Kind}: {Message}";
}
