using Elastic.Jobs;

namespace Elastic.GrainInterfaces;

/// <summary>The front door (key <see cref="DefaultKey"/>): validates and admits jobs, idempotently.</summary>
[Alias("Elastic.IJobRegistryGrain")]
public interface IJobRegistryGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>
    /// Admits a job for <paramref name="tenant"/>. The same key from the same tenant with the same spec returns the same job;
    /// with another spec it is refused. Keys of different tenants never meet.
    /// </summary>
    [Alias("Submit")] Task<SubmitResult> Submit(TrainingSpec spec, string idempotencyKey, string tenant);

    [Alias("List")] Task<IReadOnlyList<JobStatus>> List();
}
