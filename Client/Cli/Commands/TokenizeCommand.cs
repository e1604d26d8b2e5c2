using System.CommandLine;
using System.Globalization;
using Elastic.Data;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic tokenize --tokenizer NAME TEXT</c> prints the ids a tokenizer gives a text, <c>--decode IDS</c> the text of ids:
/// what a user runs to check a tokenizer before a job uses it.
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var name = new Option<string>("--tokenizer") { Description = "byte, tiktoken:gpt2, tiktoken:cl100k, tiktoken:o200k, or a tokenizer.json / SentencePiece .model file", Required = true };
        var decode = new Option<string?>("--decode") { Description = "Ids to decode instead (separated by spaces or commas)" };
        var text = new Argument<string?>("text") { Description = "Text to encode", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("tokenize", "Show the token ids of a text, or the text of token ids") { name, decode, text };
        command.SetAction((parse, _) => CommandRunner.Run(parse, console =>
        {
            var (tokenizerName, ids, input) = (parse.GetValue(name)!, parse.GetValue(decode), parse.GetValue(text));
            if ((ids is null) == (input is null)) throw new CliException("give a TEXT to encode or --decode IDS, one of them");
            ITokenizer tokenizer;
            try
            {
                tokenizer = Tokenizers.Create(FromCommandLine(tokenizerName));
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--tokenizer {tokenizerName}: {e.Message.Split(" (Parameter")[0]}");
            }
            if (input is not null)
            {
                var encoded = tokenizer.Encode(input);
                console.Plain.WriteLine(string.Join(' ', encoded));
                console.Plain.WriteLine($"{encoded.Length} tokens, vocabulary {tokenizer.VocabSize}");
                return Task.FromResult(0);
            }
            var parsed = ids!.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries).Select(id =>
                int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v < tokenizer.VocabSize ? v
                    : throw new CliException($"--decode: '{id}' is not a token id of {tokenizerName} (0 to {tokenizer.VocabSize - 1})")).ToArray();
            console.Plain.WriteLine(tokenizer.Decode(parsed));
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary>A tokenizer as a command names it: a file relative to the working folder, as a spec's is to its own.</summary>
    public static string FromCommandLine(string name) => Jobs.SpecValidator.IsTokenizerFile(name) ? Path.GetFullPath(name) : name;
}
