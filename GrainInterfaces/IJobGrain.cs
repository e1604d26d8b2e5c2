using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.GrainInterfaces;

/// <summary>One job (key: job id): its state machine, plans and generations, and the commit of every step.</summary>
[Alias("Elastic.IJobGrain")]
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Called once by the registry after validation.</summary>
    [Alias("Start")] Task Start(TrainingSpec spec, DateTimeOffset submittedAt, string tenant);

    /// <summary>Null when no job has this id.</summary>
    [Alias("GetStatus")] Task<JobStatus?> GetStatus();

    /// <summary>Waits up to <paramref name="maxWait"/> for steps after <paramref name="afterStep"/> or events after <paramref name="afterEvent"/>.</summary>
    [Alias("WaitForProgress")] Task<JobProgress?> WaitForProgress(long afterStep, long afterEvent, TimeSpan maxWait);

    /// <summary>Stops the job at the next step boundary; a no-op for a finished job.</summary>
    [Alias("Cancel")] Task<JobStatus?> Cancel();

    /// <summary>Asks a running job to checkpoint at its next step boundary (on demand, whatever its schedule).</summary>
    [Alias("RequestCheckpoint")] Task<JobStatus?> RequestCheckpoint();

    /// <summary>
    /// Moves a job that has not ended to the layout <paramref name="plan"/> (e.g. "dp=1,tp=4") at its next step boundary, its
    /// state moved between the units' memories (the same bits on any layout). Throws <see cref="ArgumentException"/> naming every
    /// reason the layout cannot run (nothing changes then), <see cref="InvalidOperationException"/> when the job has ended.
    /// </summary>
    [Alias("ChangeLayout")] Task<JobStatus?> ChangeLayout(string plan);

    /// <summary>
    /// Continues a failed or cancelled job from its latest checkpoint (or the one of <paramref name="step"/>) on
    /// whatever devices are free now. Throws <see cref="InvalidOperationException"/> when the job is not resumable.
    /// </summary>
    [Alias("Resume")] Task<JobStatus?> Resume(long? step);

    /// <summary>
    /// Writes the checkpoint of <paramref name="step"/> (default: the latest) as one model.safetensors with GPT-2 names
    /// plus config.json into <paramref name="directory"/> on the silo's filesystem; returns the model file's path.
    /// </summary>
    [Alias("Export")] Task<string> Export(long? step, string directory);

    /// <summary>The run report (the same shape as a local run's), once the job has ended.</summary>
    [Alias("GetReport")] Task<RunReport?> GetReport();
}
