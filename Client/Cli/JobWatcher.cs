using Elastic.Client;
using Elastic.GrainInterfaces;

namespace Elastic.Cli;

/// <summary>Follows a job on the cluster to its end, feeding its steps and events into a progress display.</summary>
internal static class JobWatcher
{
    public static async Task<JobStatus> Follow(IElasticClient client, string jobId, ProgressSink sink, CancellationToken cancellation)
    {
        JobStatus? last = null;
        await foreach (var progress in client.WatchAsync(jobId, cancellation))
        {
            foreach (var e in progress.Events) sink.Note($"[{e.Kind}] {e.Message}");
            foreach (var step in progress.Steps) sink.Step(step, progress.HeldOut.FirstOrDefault(h => h.Step == step.Step));
            last = progress.Status;
        }
        return last!;
    }
}
