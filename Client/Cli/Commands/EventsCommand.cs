using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic events JOB</c>: what happened to a job, in order.</summary>
internal static class EventsCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var cluster = ClusterConnection.Option();
        var command = new Command("events", "List a job's events") { job, cluster };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            await using var connection = await ClusterConnection.Connect(parse, cluster, cancellation);
            var jobId = parse.GetValue(job)!;
            var status = await connection.Client.GetStatusAsync(jobId, cancellation);
            await foreach (var progress in connection.Client.WatchAsync(jobId, cancellation))
            {
                foreach (var e in progress.Events) console.Plain.WriteLine(e.ToString());
                break; // the first answer holds every event so far
            }
            console.Plain.WriteLine($"{status.JobId}: {status.State}");
            return 0;
        }));
        return command;
    }
}
