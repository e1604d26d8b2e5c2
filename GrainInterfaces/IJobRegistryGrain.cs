using Elastic.Jobs;

namespace Elastic.GrainInterfaces;

/// <summary>The front door (key <see cref="DefaultKey"/>): validates and admits jobs, idempotently.</summary>
[Alias("Elastic.IJobRegistryGrain")]
public interface IJobRegistryGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>Admits a job. The same key with the same spec returns the same job; with another spec it is refused.</summary>
    [Alias("Submit")] Task<SubmitResult> Submit(TrainingSpec spec, string idempotencyKey);

    [Alias("List")] Task<IReadOnlyList<JobStatus>> List();
}
