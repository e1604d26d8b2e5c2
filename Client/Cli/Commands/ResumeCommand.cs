using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic resume JOB [--step S]</c>: continues a failed or cancelled job from a checkpoint, on the devices free now.</summary>
internal static class ResumeCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var step = new Option<long?>("--step") { Description = "Resume from the checkpoint of this step (default: the latest)" };
        return ClusterConnection.Command("resume", "Continue a failed or cancelled job from a checkpoint", [job, step], async (parse, console, client, cancellation) =>
        {
            var status = await client.ResumeAsync(parse.GetValue(job)!, parse.GetValue(step), cancellation);
            console.Plain.WriteLine($"{status.JobId}: {status.State} from step {status.CommittedStep} (elastic watch {status.JobId})");
            return 0;
        });
    }
}
