using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic events JOB</c>: what happened to a job, in order.</summary>
internal static class EventsCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        return ClusterConnection.Command("events", "List a job's events", [job], async (parse, console, client, cancellation) =>
        {
            var jobId = parse.GetValue(job)!;
            await foreach (var progress in client.WatchAsync(jobId, cancellation))
            {
                // The first answer holds every event so far.
                foreach (var e in progress.Events) console.Plain.WriteLine(e.ToString());
                console.Plain.WriteLine($"{progress.Status.JobId}: {progress.Status.State}");
                break;
            }
            return 0;
        });
    }
}
