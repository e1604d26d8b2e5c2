using System.CommandLine;
using Elastic.GrainInterfaces;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic watch JOB</c>: a live progress bar and events until the job ends.</summary>
internal static class WatchCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        return ClusterConnection.Command("watch", "Follow a job until it ends", [job], async (parse, console, client, cancellation) =>
        {
            var jobId = parse.GetValue(job)!;
            var status = await client.GetStatusAsync(jobId, cancellation);
            var final = await TrainingProgress.Show(console, status.TotalSteps, sink => JobWatcher.Follow(client, jobId, sink, cancellation));
            console.Plain.WriteLine($"{final.JobId}: {final.State} after {final.CommittedStep} steps");
            return final.State == JobState.Completed ? 0 : 1;
        });
    }
}
