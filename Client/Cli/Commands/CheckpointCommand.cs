using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic checkpoint JOB</c>: asks a running job to checkpoint at its next step boundary.</summary>
internal static class CheckpointCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        return ClusterConnection.Command("checkpoint", "Checkpoint a running job at its next step boundary", [job], async (parse, console, client, cancellation) =>
        {
            var status = await client.CheckpointAsync(parse.GetValue(job)!, cancellation);
            console.Plain.WriteLine($"{status.JobId}: {status.State}; last checkpoint at step {status.LastCheckpointStep?.ToString() ?? "-"} (a new one is taken at the next step boundary)");
            return 0;
        });
    }
}
