using System.CommandLine;
using Spectre.Console;

namespace Elastic.Cli;

/// <summary>Where a command writes: a Spectre console for rich output, and a plain writer for lines that must not wrap.</summary>
public sealed record CliOutput(IAnsiConsole Ansi, TextWriter Plain)
{
    /// <summary>The terminal when the invocation writes to stdout; otherwise a non-interactive console over its writer (tests, redirection).</summary>
    public static CliOutput From(ParseResult parse)
    {
        var writer = parse.InvocationConfiguration.Output;
        if (ReferenceEquals(writer, Console.Out)) return new CliOutput(AnsiConsole.Console, writer);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Interactive = InteractionSupport.No,
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 120;
        return new CliOutput(console, writer);
    }
}
