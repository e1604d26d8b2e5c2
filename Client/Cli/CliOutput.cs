using System.CommandLine;
using Spectre.Console;

namespace Elastic.Cli;

/// <summary>Where a command writes: a Spectre console for rich output, and a plain writer for lines that must not wrap.</summary>
public sealed record CliOutput(IAnsiConsole Ansi, TextWriter Plain, bool IsTerminal)
{
    /// <summary>Width of rich output (tables, panels) that goes to a file, a pipe or a test: wide enough that addresses and paths stay on one line.</summary>
    public const int RedirectedWidth = 200;

    /// <summary>The terminal when the invocation writes to an interactive stdout; otherwise a plain console over its writer (pipes, files, tests).</summary>
    public static CliOutput From(ParseResult parse)
    {
        var writer = parse.InvocationConfiguration.Output;
        if (ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected) return new CliOutput(AnsiConsole.Console, writer, IsTerminal: true);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Interactive = InteractionSupport.No,
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = RedirectedWidth;
        return new CliOutput(console, writer, IsTerminal: false);
    }

    /// <summary>An error line: red on a terminal, one unwrapped line (however long) anywhere else.</summary>
    public void Error(string message)
    {
        if (IsTerminal) Ansi.MarkupLineInterpolated($"[red]error:[/] {message}");
        else Plain.WriteLine("error: " + message);
    }
}
