using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Client;

/// <summary>
/// What a program does with jobs, the same through the Orleans client (<see cref="ElasticClient"/>: trusted, inside the
/// cluster) and through the HTTP API (<see cref="Http.ElasticApiClient"/>: a tenant's key). Failures are
/// <see cref="ElasticException"/> subtypes either way.
/// </summary>
public interface IElasticClient
{
    Task<string> SubmitAsync(TrainingSpec spec, string? idempotencyKey = null, CancellationToken cancellation = default);
    Task<JobStatus> GetStatusAsync(string jobId, CancellationToken cancellation = default);
    Task<IReadOnlyList<JobStatus>> ListAsync(CancellationToken cancellation = default);
    Task<JobStatus> CancelAsync(string jobId, CancellationToken cancellation = default);
    Task<JobStatus> CheckpointAsync(string jobId, CancellationToken cancellation = default);
    Task<JobStatus> ReplanAsync(string jobId, string plan, CancellationToken cancellation = default);
    Task<JobStatus> ResumeAsync(string jobId, long? step = null, CancellationToken cancellation = default);

    /// <summary>Exports a checkpoint as a model folder; returns the model file's path on the service's storage.</summary>
    /// <param name="directory">Where (the Orleans client names it); null through the API, where the service chooses.</param>
    Task<string> ExportAsync(string jobId, string? directory, long? step = null, CancellationToken cancellation = default);

    Task<RunReport> GetReportAsync(string jobId, CancellationToken cancellation = default);
    Task<IReadOnlyList<SiloInventory>> GetInventoryAsync(CancellationToken cancellation = default);

    /// <summary>The jobs the scheduler knows (running or queued) in its order, with their shares; through the API, the caller's tenant's only unless it is an admin.</summary>
    Task<IReadOnlyList<JobShare>> GetScheduleAsync(CancellationToken cancellation = default);
    IAsyncEnumerable<JobProgress> WatchAsync(string jobId, CancellationToken cancellation = default);
}
