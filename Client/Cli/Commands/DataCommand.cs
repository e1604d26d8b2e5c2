using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Data.Datasets;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic data prepare INPUT... --tokenizer NAME --out DEST</c>: tokenizes text files, JSON lines and folders of them on every
/// core into a dataset (token shards, document indexes, a manifest with digests) in a folder or an Azure Blob container/prefix
/// (<c>az://CONTAINER/PREFIX</c>), for a job's data.source.
/// </summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs") { Description = "Text files, .jsonl files and folders of them", Arity = ArgumentArity.OneOrMore };
        var tokenizer = new Option<string>("--tokenizer") { Description = "byte, tiktoken:gpt2, tiktoken:cl100k, tiktoken:o200k, or a tokenizer.json / SentencePiece .model file", Required = true };
        var output = new Option<string>("--out") { Description = "A folder, or az://CONTAINER/PREFIX (account from ELASTIC_STORAGE_CONNECTION_STRING or ELASTIC_STORAGE_ACCOUNT)", Required = true };
        var field = new Option<string>("--field") { Description = "The text field of a .jsonl record", DefaultValueFactory = _ => "text" };
        var shardTokens = new Option<long>("--shard-tokens") { Description = "Tokens per shard (shards end at document boundaries)", DefaultValueFactory = _ => 1L << 26 };
        var blockTokens = new Option<long>("--block-tokens") { Description = "Tokens per block: the unit a job fetches with one range read and checks against its SHA-256", DefaultValueFactory = _ => DatasetWriter.DefaultBlockTokens };
        var threads = new Option<int>("--threads") { Description = "Tokenizer threads (default: every core)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var prepare = new Command("prepare", "Tokenize text into a dataset a job can read") { inputs, tokenizer, output, field, shardTokens, blockTokens, threads };
        prepare.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            var (name, destination) = (parse.GetValue(tokenizer)!, parse.GetValue(output)!);
            if (parse.GetValue(shardTokens) < 1) throw new CliException($"--shard-tokens {parse.GetValue(shardTokens)}: must be at least 1");
            if (parse.GetValue(blockTokens) < 1) throw new CliException($"--block-tokens {parse.GetValue(blockTokens)}: must be at least 1");
            if (parse.GetValue(threads) < 1) throw new CliException($"--threads {parse.GetValue(threads)}: must be at least 1");
            var files = DatasetInputs.Files(parse.GetValue(inputs)!.Select(Path.GetFullPath).ToList());
            ITokenizer chosen;
            try
            {
                chosen = Tokenizers.Create(TokenizeCommand.FromCommandLine(name));
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--tokenizer {name}: {e.Message.Split(" (Parameter")[0]}");
            }
            StoreLocation location;
            try
            {
                location = StoreLocation.Open(destination.Contains("://", StringComparison.Ordinal) ? destination : Path.GetFullPath(destination));
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--out {e.Message}");
            }
            var writer = new DatasetWriter(location, chosen, parse.GetValue(shardTokens), parse.GetValue(blockTokens));
            var documents = DatasetInputs.Documents(files, parse.GetValue(field)!);
            var bytes = files.Sum(f => new FileInfo(f).Length);
            var clock = Stopwatch.StartNew();
            var manifest = await WithProgress(console, bytes, progress => writer.WriteAsync(documents, parse.GetValue(threads), progress, cancellation));
            var seconds = clock.Elapsed.TotalSeconds;
            console.Plain.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{manifest.Documents:N0} documents, {manifest.Tokens:N0} tokens in {manifest.Shards.Count} shard(s) ({(manifest.IdBytes == 2 ? "uint16" : "uint32")}) in {seconds:F1} s: {manifest.Tokens / Math.Max(seconds, 1e-9):N0} tokens/s on {parse.GetValue(threads)} thread(s)"));
            console.Plain.WriteLine($"dataset: {location.Display} (data.source for a job; data.tokenizer {manifest.Tokenizer})");
            return 0;
        }));
        return new Command("data", "Prepare datasets") { prepare };
    }

    /// <summary>A bar over the input's bytes on a terminal (characters read stand in for them); nothing in between otherwise.</summary>
    private static async Task<T> WithProgress<T>(CliOutput console, long bytes, Func<IProgress<DatasetWriter.Progress>?, Task<T>> work)
    {
        if (!console.Ansi.Profile.Capabilities.Interactive) return await work(null);
        T result = default!;
        await console.Ansi.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("tokenizing", maxValue: Math.Max(1, bytes));
                result = await work(new Progress<DatasetWriter.Progress>(p =>
                {
                    task.Value = Math.Min(p.Characters, bytes);
                    task.Description = string.Create(CultureInfo.InvariantCulture, $"{p.Documents:N0} documents, {p.Tokens:N0} tokens");
                }));
                task.Value = task.MaxValue;
            });
        return result;
    }
}
