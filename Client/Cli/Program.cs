using System.CommandLine;
using Elastic.Cli;

// Signals are the commands' own business: `train` stops at a step boundary and saves (Interrupts); System.CommandLine's
// handler would end the process two seconds after Ctrl-C, in the middle of that save.
return await ElasticCommandLine.Create().Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
