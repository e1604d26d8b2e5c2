using System.Diagnostics;
using System.Globalization;
using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Data.Datasets;

namespace Elastic.Benchmarks;

/// <summary>
/// `elastic data prepare`'s throughput (tokenize, pack, shard, digest, write) against a bare Microsoft.ML.Tokenizers loop over the
/// same documents (the bundled Bible's chapters), on one thread and on every core, alternating, medians of several runs.
/// </summary>
internal static class DataPrepare
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var name = args.Length > 0 ? args[0] : "tiktoken:gpt2";
        const int runs = 5;
        var tokenizer = Tokenizers.Create(name);
        var text = CorpusSource.ReadBundledText("kjv");
        var documents = Chapters(text);
        var cores = Environment.ProcessorCount;
        var rows = new List<string>();
        foreach (var threads in new[] { 1, cores }.Distinct())
        {
            var (bare, prepare) = (new List<double>(), new List<double>());
            long tokens = 0;
            for (var run = 0; run <= runs; run++)
            {
                var watch = Stopwatch.StartNew();
                tokens = 0;
                Parallel.ForEach(documents, new ParallelOptions { MaxDegreeOfParallelism = threads }, d => Interlocked.Add(ref tokens, tokenizer.Encode(d).Length + 1));
                var bareSeconds = watch.Elapsed.TotalSeconds;
                var folder = Directory.CreateTempSubdirectory("elastic-bench-data-").FullName;
                try
                {
                    watch.Restart();
                    await new DatasetWriter(StoreLocation.Open(folder), tokenizer, 1L << 22).WriteAsync(documents, threads);
                    if (run > 0) // run 0 warms up
                    {
                        bare.Add(tokens / bareSeconds);
                        prepare.Add(tokens / watch.Elapsed.TotalSeconds);
                    }
                }
                finally
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
            var (bareRate, prepareRate) = (Statistics.Median(bare), Statistics.Median(prepare));
            rows.Add(string.Create(inv, $"| {threads} | {bareRate:N0} | {prepareRate:N0} | {prepareRate / bareRate:F2}x |"));
        }
        var table = string.Join("\n",
            "| threads | bare Microsoft.ML.Tokenizers loop (tokens/s) | elastic data prepare (tokens/s) | prepare / bare |",
            "|---:|---:|---:|---:|",
            string.Join("\n", rows),
            "",
            string.Create(inv, $"Tokenizer {name}; {documents.Length:N0} documents (the bundled Bible's chapters), {text.Length:N0} characters; prepare writes uint{(tokenizer.VocabSize <= 65536 ? 16 : 32)} shards of 4M tokens with indexes and SHA-256 digests to a local folder; {runs} runs after a warm-up, medians; {cores} core(s)."));
        Console.WriteLine(table);
        BenchmarkRecord.Write("data-prepare", "Dataset preparation against a bare tokenizer loop", $"dotnet run -c Release --project Benchmarks -- data-prepare {name}", table);
        return 0;
    }

    /// <summary>The bundled Bible as documents, one per chapter (a heading line "Book N" starts each).</summary>
    public static string[] Chapters(string text) => System.Text.RegularExpressions.Regex.Split(text, @"\n(?=(?:[123] )?[A-Z][A-Za-z ]+ \d+\n)");
}
