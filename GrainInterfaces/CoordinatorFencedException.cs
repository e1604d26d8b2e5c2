namespace Elastic.GrainInterfaces;

/// <summary>A call from a job coordinator whose silo is declared dead or shutting down, refused: another coordinator drives the job.</summary>
[GenerateSerializer, Alias("Elastic.CoordinatorFencedException")]
public sealed class CoordinatorFencedException : Exception
{
    public CoordinatorFencedException() { }

    public CoordinatorFencedException(string message) : base(message) { }
}
