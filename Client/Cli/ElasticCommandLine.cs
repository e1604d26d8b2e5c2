using System.CommandLine;
using Elastic.Cli.Commands;

namespace Elastic.Cli;

/// <summary>The `elastic` command tree (Program.cs runs it; tests invoke it in-process).</summary>
public static class ElasticCommandLine
{
    public static RootCommand Create() => new("Elastic: elastic distributed training of transformer models")
    {
        TrainCommand.Create(),
        SampleCommand.Create(),
        EvalCommand.Create(),
        TokenizeCommand.Create(),
        DataCommand.Create(),
        SubmitCommand.Create(),
        StatusCommand.Create(),
        WatchCommand.Create(),
        CancelCommand.Create(),
        ResumeCommand.Create(),
        CheckpointCommand.Create(),
        ReplanCommand.Create(),
        PlanCommand.Create(),
        ExportCommand.Create(),
        ListCommand.Create(),
        EventsCommand.Create(),
        ClusterCommand.Create(),
        KeysCommand.Create(),
        ServeCommand.Create(),
    };
}
