using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic cancel JOB</c>: stops a job at its next step boundary.</summary>
internal static class CancelCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        return ClusterConnection.Command("cancel", "Cancel a job at its next step boundary", [job], async (parse, console, client, cancellation) =>
        {
            var status = await client.CancelAsync(parse.GetValue(job)!, cancellation);
            console.Plain.WriteLine($"{status.JobId}: {status.State} (cancellation takes effect at the next step boundary)");
            return 0;
        });
    }
}
