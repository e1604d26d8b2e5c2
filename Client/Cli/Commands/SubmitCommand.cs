using System.CommandLine;
using Elastic.Jobs;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic submit SPEC</c>: validates on the cluster and admits a job; prints its id.</summary>
internal static class SubmitCommand
{
    public static Command Create()
    {
        var spec = new Argument<FileInfo>("spec") { Description = "Job spec (JSON); see docs/job-spec.md" };
        var key = new Option<string?>("--key") { Description = "Idempotency key: resubmitting the same spec with it returns the same job" };
        return ClusterConnection.Command("submit", "Submit a job to a cluster", [spec, key], async (parse, console, client, cancellation) =>
        {
            var jobId = await client.SubmitAsync(SpecJson.Read(parse.GetValue(spec)!.FullName), parse.GetValue(key), cancellation);
            console.Plain.WriteLine(jobId);
            return 0;
        });
    }
}
