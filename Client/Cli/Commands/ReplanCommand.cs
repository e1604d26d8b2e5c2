using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic replan JOB --plan dp=1,tp=4</c>: moves a running job to another layout at its next step boundary.</summary>
internal static class ReplanCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var plan = new Option<string>("--plan") { Description = "The layout to move to, e.g. dp=1,pp=2,tp=4,zero=1 (tp divides model.tensorShards; the bits stay the same)", Required = true };
        return ClusterConnection.Command("replan", "Move a running job to another parallel layout at its next step boundary", [job, plan], async (parse, console, client, cancellation) =>
        {
            var status = await client.ReplanAsync(parse.GetValue(job)!, parse.GetValue(plan)!, cancellation);
            console.Plain.WriteLine($"{status.JobId}: {status.State} at step {status.CommittedStep}; moves to {parse.GetValue(plan)} at the next step boundary (elastic events {status.JobId} shows the move and its pause)");
            return 0;
        });
    }
}
