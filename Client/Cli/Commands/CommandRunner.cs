using Elastic.Training.Specs;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary>Turns the failures a user can cause into a clear message and an exit code, never a stack trace.</summary>
internal static class CommandRunner
{
    public const int InvalidInput = 2;

    public static async Task<int> Run(Func<Task<int>> command)
    {
        try
        {
            return await command();
        }
        catch (SpecValidationException e)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return InvalidInput;
        }
        catch (CliException e)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return InvalidInput;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[yellow]cancelled[/]");
            return 130;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return 1;
        }
    }
}
