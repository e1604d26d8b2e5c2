using System.CommandLine;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic export JOB [--step S] [--out DIR]</c>: one consolidated safetensors file with GPT-2 names, plus config.json.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var step = new Option<long?>("--step") { Description = "Export the checkpoint of this step (default: the latest)" };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Directory for model.safetensors and config.json, on the silos' filesystem (with --cluster; through --api the service chooses)" };
        return ClusterConnection.Command("export", "Export a job's checkpoint as model.safetensors + config.json", [job, step, output], async (parse, console, client, cancellation) =>
        {
            var model = await client.ExportAsync(parse.GetValue(job)!, parse.GetValue(output)?.FullName, parse.GetValue(step), cancellation);
            console.Plain.WriteLine(model);
            return 0;
        });
    }
}
