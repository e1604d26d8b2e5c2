using System.CommandLine;
using System.Diagnostics;
using Elastic.Grains.Capacity;
using Elastic.Jobs;
using Elastic.Planning;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic plan SPEC --shape 1250x8:H100-80GB</c> (or the silos of a live cluster): the planner's ranking of layouts for the
/// spec, each with its predicted throughput, step time and memory, and why the rest were rejected. Starts nothing.
/// </summary>
internal static class PlanCommand
{
    public static Command Create()
    {
        var specFile = new Argument<FileInfo>("spec") { Description = "The job spec (JSON)" };
        var shape = new Option<string?>("--shape")
        {
            Description = "Plan for nodes that need not exist: NODESxDEVICES:PROFILE[+...], e.g. 1250x8:H100-80GB (profiles: H100-80GB, H200-141GB, A100-80GB, MI300X-192GB, cpu); without it, the silos of --cluster or --api",
        };
        var top = new Option<int>("--top") { Description = "How many of the best layouts to show", DefaultValueFactory = _ => 5 };
        var cluster = ClusterConnection.ClusterOption();
        var api = ClusterConnection.ApiOption();
        var command = new Command("plan", "Rank the layouts a spec could run on, without starting anything") { specFile, shape, top, cluster, api };
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var spec = SpecFiles.Read(parse.GetValue(specFile)!.FullName);
            if (SpecValidator.Validate(spec) is { Count: > 0 } errors) throw new SpecValidationException(errors);
            var keep = parse.GetValue(top);
            if (keep < 1) throw new CliException($"--top {keep}: must be at least 1");
            var nodes = parse.GetValue(shape) is { } text
                ? Parse(text)
                : InventoryShape.Of(await ClusterConnection.With(parse, cluster, api, client => client.GetInventoryAsync(cancellation), cancellation));
            if (nodes.Devices == 0) throw new CliException("the cluster offers no devices; give --shape to plan for nodes that need not exist");
            var pins = SpecLayout.Pins(spec);
            var watch = Stopwatch.StartNew();
            var ranking = new Planner(spec).Rank(nodes, pins, keep);
            foreach (var line in PlanReport.Lines(spec, nodes, pins, ranking, watch.Elapsed)) console.Plain.WriteLine(line);
            return ranking.Choice is null ? 1 : 0;
        }));
        return command;
    }

    private static ClusterShape Parse(string text)
    {
        try
        {
            return ClusterShape.Parse(text);
        }
        catch (FormatException e)
        {
            throw new CliException(e.Message);
        }
    }
}
