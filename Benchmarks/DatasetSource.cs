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
/// load and verify it when a job starts, and the step time after (a job reads its dataset whole when it starts, so a step never
/// waits for data; this measures that it does not).
/// </summary>
internal static class DatasetSource
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int loads = 5, steps = 12, port = 10410;
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
                await new DatasetWriter(StoreLocation.Open(destination), tokenizer, 1L << 18).WriteAsync(chapters, Environment.ProcessorCount);
            var spec = new TrainingSpec
            {
                Name = "bench-dataset", Seed = 1, Steps = steps,
                Model = new ModelSpec { Architecture = "llama", Layers = 2, DModel = 128, Heads = 4, KvHeads = 2, Vocab = 50304, Context = 128, Dropout = 0 },
                Data = new DataSpec { Tokenizer = "tiktoken:gpt2" },
                Batch = new BatchSpec { Global = 8, Micro = 4 },
            };
            var results = new Dictionary<string, (List<double> LoadMs, List<double> StepMs)>();
            foreach (var (name, source) in new[] { ("local folder", disk), ("Azure Blob (Azurite)", blob), ("local folder", disk), ("Azure Blob (Azurite)", blob) })
            {
                var sourced = spec with { Data = spec.Data with { Source = source } };
                var (loadMs, stepMs) = results.TryGetValue(name, out var r) ? r : results[name] = ([], []);
                TokenCorpus corpus = null!;
                for (var i = 0; i < loads; i++)
                {
                    var watch = Stopwatch.StartNew();
                    corpus = TokenCorpus.Load(sourced);
                    loadMs.Add(watch.Elapsed.TotalMilliseconds);
                }
                stepMs.AddRange(await DeviceWorker.RunOnce("bench-dataset", 1, () =>
                {
                    using var trainer = new Trainer(sourced, corpus);
                    return Enumerable.Range(1, steps).Select(s =>
                    {
                        var watch = Stopwatch.StartNew();
                        trainer.Step(s);
                        return watch.Elapsed.TotalMilliseconds;
                    }).Skip(2).ToList();
                }));
            }
            var (local, remote) = (results["local folder"], results["Azure Blob (Azurite)"]);
            var manifest = await DatasetReader.ManifestAsync(StoreLocation.Open(disk));
            var table = string.Join("\n",
                "| source | load and verify (ms) | median step (ms) |",
                "|---|---:|---:|",
                string.Create(inv, $"| local folder | {Statistics.Median(local.LoadMs):F0} | {Statistics.Median(local.StepMs):F1} |"),
                string.Create(inv, $"| Azure Blob (Azurite) | {Statistics.Median(remote.LoadMs):F0} | {Statistics.Median(remote.StepMs):F1} |"),
                "",
                string.Create(inv, $"**Blob / local: load {Statistics.Median(remote.LoadMs) / Statistics.Median(local.LoadMs):F2}x, step {Statistics.Median(remote.StepMs) / Statistics.Median(local.StepMs):F2}x.** The bundled Bible as {manifest.Documents:N0} chapters in tiktoken:gpt2, {manifest.Tokens:N0} tokens in {manifest.Shards.Count} shards of 256K tokens (uint16), every shard's SHA-256 checked on load; a 2-layer Llama, d 128, context 128, batch 8 = 2 x 4, 1 thread; {loads} loads and {steps - 2} steps per round, 2 rounds per source, alternating, medians. Steps wait for no data: a job reads its dataset whole when it starts."));
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
}
