using System.Diagnostics;
using System.Globalization;
using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Data.Datasets;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// Training from a dataset in Azure Blob Storage (Azurite on this machine) against the same dataset in a local folder: the time to
/// open it when a job starts (manifest and listing), the step time, and how long steps wait for data (blocks are fetched a step
/// ahead, so after the first step a step should wait for none). Each round starts with an empty cache.
/// </summary>
internal static class DatasetSource
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int rounds = 2, steps = 12, port = 10410, blockTokens = 4096;
        var folder = Directory.CreateTempSubdirectory("elastic-bench-dataset-").FullName;
        Directory.CreateDirectory(Path.Combine(folder, "azurite"));
        await LocalAzurite.Start(Path.Combine(folder, "azurite"), port);
        try
        {
            Environment.SetEnvironmentVariable(StoreLocation.ConnectionVariable, LocalAzurite.ConnectionString(port));
            var tokenizer = Tokenizers.Create("tiktoken:gpt2");
            var chapters = DataPrepare.Chapters(CorpusSource.ReadBundledText("kjv"));
            var (disk, blob) = (Path.Combine(folder, "disk"), "az://bench-datasets/kjv-gpt2");
            foreach (var destination in new[] { disk, blob })
                await new DatasetWriter(StoreLocation.Open(destination), tokenizer, 1L << 18, blockTokens).WriteAsync(chapters, Environment.ProcessorCount);
            var spec = new TrainingSpec
            {
                Name = "bench-dataset", Seed = 1, Steps = steps,
                Model = new ModelSpec { Architecture = "llama", Layers = 2, DModel = 128, Heads = 4, KvHeads = 2, Vocab = 50304, Context = 128, Dropout = 0 },
                Data = new DataSpec { Tokenizer = "tiktoken:gpt2" },
                Batch = new BatchSpec { Global = 8, Micro = 4 },
            };
            var results = new Dictionary<string, Figures>();
            for (var round = 0; round < rounds; round++)
                foreach (var (name, source) in new[] { ("local folder", disk), ("Azure Blob (Azurite)", blob) })
                {
                    var figures = results.TryGetValue(name, out var f) ? f : results[name] = new Figures();
                    var watch = Stopwatch.StartNew();
                    var dataset = await DatasetTokens.OpenAsync(StoreLocation.Open(source), spec.Model.Vocab, new BlockCache(256L << 20));
                    figures.OpenMs.Add(watch.Elapsed.TotalMilliseconds);
                    var corpus = TokenCorpus.FromSource(spec with { Data = spec.Data with { Source = source } }, tokenizer, dataset);
                    await DeviceWorker.RunOnce("bench-dataset", 1, () =>
                    {
                        using var trainer = new Trainer(spec, corpus);
                        for (var s = 1; s <= steps; s++)
                        {
                            var (waited, step) = (corpus.DataWaited, Stopwatch.StartNew());
                            trainer.Step(s);
                            var (ms, waitMs) = (step.Elapsed.TotalMilliseconds, (corpus.DataWaited - waited).TotalMilliseconds);
                            if (s == 1) figures.FirstWaitMs.Add(waitMs);
                            else
                            {
                                figures.StepMs.Add(ms);
                                figures.WaitMs.Add(waitMs);
                            }
                        }
                        return 0;
                    });
                }
            var (local, remote) = (results["local folder"], results["Azure Blob (Azurite)"]);
            var manifest = await DatasetTokens.ManifestAsync(StoreLocation.Open(disk));
            string Row(string name, Figures r) => string.Create(inv,
                $"| {name} | {Statistics.Median(r.OpenMs):F0} | {Statistics.Median(r.FirstWaitMs):F1} | {Statistics.Median(r.StepMs):F1} | {Statistics.Median(r.WaitMs):F2} | {r.WaitMs.Max():F2} |");
            var table = string.Join("\n",
                "| source | open (ms) | step 1 waits (ms) | median step (ms) | median wait per step after (ms) | longest wait after (ms) |",
                "|---|---:|---:|---:|---:|---:|",
                Row("local folder", local),
                Row("Azure Blob (Azurite)", remote),
                "",
                string.Create(inv, $"**Blob / local: step {Statistics.Median(remote.StepMs) / Statistics.Median(local.StepMs):F2}x; a step from blob storage waits {Statistics.Median(remote.WaitMs):F2} ms for data (median) once the first has started the fetches ahead.** The bundled Bible as {manifest.Documents:N0} chapters in tiktoken:gpt2, {manifest.Tokens:N0} tokens in {manifest.Shards.Count} shards (uint16), read in blocks of {blockTokens:N0} tokens, each block's SHA-256 checked when it arrives, an empty cache per round; a 2-layer Llama, d 128, context 128, batch 8 = 2 x 4, 1 thread; {steps} steps per round ({steps - 1} after the first), {rounds} rounds per source, alternating, medians. Opening a dataset reads its manifest and lists its shards, whatever its size."));
            Console.WriteLine(table);
            BenchmarkRecord.Write("dataset-source", "Training from a dataset in blob storage against the same on local disk", "dotnet run -c Release --project Benchmarks -- dataset-source", table);
        }
        finally
        {
            await LocalAzurite.Stop(Path.Combine(folder, "azurite"));
            Directory.Delete(folder, recursive: true);
        }
        return 0;
    }

    private sealed class Figures
    {
        public List<double> OpenMs { get; } = [];
        public List<double> FirstWaitMs { get; } = [];
        public List<double> StepMs { get; } = [];
        public List<double> WaitMs { get; } = [];
    }
}
