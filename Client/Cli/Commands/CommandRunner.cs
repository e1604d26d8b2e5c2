using System.CommandLine;
using Elastic.Client;
using Elastic.Jobs;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary>Turns the failures a user can cause into a clear message and an exit code, never a stack trace.</summary>
internal static class CommandRunner
{
    public const int InvalidInput = 2;
    public const int Unavailable = 3;
    public const int Cancelled = 130;

    public static async Task<int> Run(ParseResult parse, Func<CliOutput, Task<int>> command)
    {
        var output = CliOutput.From(parse);
        try
        {
            return await command(output);
        }
        catch (ClusterUnavailableException e)
        {
            output.Error(e.Message);
            return Unavailable;
        }
        catch (Exception e) when (e is SpecValidationException or CliException or ElasticException)
        {
            output.Error(e.Message);
            return InvalidInput;
        }
        catch (OperationCanceledException)
        {
            output.Ansi.MarkupLine("[yellow]cancelled[/]");
            return Cancelled;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            output.Error(e.Message);
            return 1;
        }
        catch (Exception e)
        {
            // Anything else is our bug or an outage we did not foresee: say what it was, never a stack trace.
            output.Error($"{e.GetType().Name}: {e.Message.Split('\n', 2)[0]}");
            return 1;
        }
    }
}
