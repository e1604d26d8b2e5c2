using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic cancel JOB</c>: stops a job at its next step boundary.</summary>
internal static class CancelCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var cluster = ClusterConnection.Option();
        var command = new Command("cancel", "Cancel a job at its next step boundary") { job, cluster };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            await using var connection = await ClusterConnection.Connect(parse, cluster, cancellation);
            var status = await connection.Client.CancelAsync(parse.GetValue(job)!, cancellation);
            console.Plain.WriteLine($"{status.JobId}: {status.State} (cancellation takes effect at the next step boundary)");
            return 0;
        }));
        return command;
    }
}
