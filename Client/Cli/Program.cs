// The `elastic` command line: a table of contents of its commands.
using System.CommandLine;
using Elastic.Cli.Commands;

var root = new RootCommand("Elastic: elastic distributed training of transformer models")
{
    TrainCommand.Create(),
    SampleCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
