using System.Diagnostics;
using System.Globalization;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// Checkpoint save and load through our writer and reader (chunks with per-block digests, manifest, latest;
/// verified ranged reads) against raw Azure SDK upload and download of the same bytes, to the same Azurite,
/// in the same run; and the training stall per checkpoint (the host copy) as a fraction of a step.
/// </summary>
internal static class CheckpointThroughput
{
    public static async Task<int> Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var spec = new TrainingSpec
        {
            Name = "checkpoint-bench",
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 4, Context = 128 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
        };
        var corpus = TokenCorpus.Load(spec);
        using var device = new DeviceWorker("bench-device");
        var trainer = await device.Run(1, () => new Trainer(spec, corpus));
        var stepMs = new List<double>();
        var captureMs = new List<double>();
        using var staging = new CheckpointStaging();
        var state = await device.Run(1, () =>
        {
            IReadOnlyList<ShardedTensor> captured = [];
            for (var step = 1; step <= rounds + 1; step++)
            {
                var watch = Stopwatch.StartNew();
                trainer.Step(step);
                if (step > 1) stepMs.Add(watch.Elapsed.TotalMilliseconds);
                watch.Restart();
                captured = EngineCheckpoint.Capture(trainer, staging);
                if (step > 1) captureMs.Add(watch.Elapsed.TotalMilliseconds);
            }
            return captured;
        });
        var layout = EngineCheckpoint.Layout(trainer);
        var bytes = state.Sum(s => (long)s.Data.Length);

        var folder = Directory.CreateTempSubdirectory("elastic-bench-azurite-").FullName;
        const int port = 10400;
        await LocalAzurite.Start(folder, port);
        try
        {
            var connection = LocalAzurite.ConnectionString(port);
            var container = new BlobContainerClient(connection, "bench");
            var store = new AzureBlobStore(container);
            var raw = state.SelectMany(s => s.Data.ToArray()).ToArray();
            var (ourSave, ourLoad, rawSave, rawLoad) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
            for (var round = 0; round < rounds; round++)
            {
                var checkpoints = new CheckpointLayout($"jobs/bench-{round}");
                var watch = Stopwatch.StartNew();
                var manifest = await EngineCheckpoint.SaveAsync(new CheckpointWriter(store, checkpoints), "bench", spec, round + 1, 1, "dp=1", state);
                ourSave.Add(watch.Elapsed.TotalSeconds);
                watch.Restart();
                await EngineCheckpoint.ReadAsync(new CheckpointReader(store, checkpoints), manifest, layout);
                ourLoad.Add(watch.Elapsed.TotalSeconds);

                var blob = container.GetBlobClient($"raw/{round}");
                watch.Restart();
                await blob.UploadAsync(BinaryData.FromBytes(raw), new BlobUploadOptions
                {
                    TransferOptions = new StorageTransferOptions { InitialTransferSize = 4 << 20, MaximumTransferSize = 4 << 20, MaximumConcurrency = 8 },
                });
                rawSave.Add(watch.Elapsed.TotalSeconds);
                watch.Restart();
                await blob.DownloadContentAsync();
                rawLoad.Add(watch.Elapsed.TotalSeconds);
            }
            var mb = bytes / 1e6;
            var inv = CultureInfo.InvariantCulture;
            var (saveRatio, loadRatio) = (Statistics.Median(rawSave) / Statistics.Median(ourSave), Statistics.Median(rawLoad) / Statistics.Median(ourLoad));
            var table = string.Join("\n",
                "| path | save (MB/s) | load (MB/s) |",
                "|---|---:|---:|",
                string.Create(inv, $"| Elastic checkpoint (chunks + digests + manifest + latest; verified reads per tensor) | {mb / Statistics.Median(ourSave):N0} | {mb / Statistics.Median(ourLoad):N0} |"),
                string.Create(inv, $"| raw Azure SDK (one blob, same bytes, same transfer options) | {mb / Statistics.Median(rawSave):N0} | {mb / Statistics.Median(rawLoad):N0} |"),
                "",
                string.Create(inv, $"**Save {saveRatio:F2} and load {loadRatio:F2} of raw** (goal >= 0.8). **Training stall per checkpoint: {Statistics.Median(captureMs):F1} ms host copy into reused staging buffers = {Statistics.Median(captureMs) / Statistics.Median(stepMs) * 100:F1}% of a {Statistics.Median(stepMs):F0} ms step**; the upload itself runs off the device thread. State: parameters and AdamW moments of GPT 4 layers, d=256 ({mb:F1} MB); Azurite in memory on this machine; medians over {rounds} rounds."));
            Console.WriteLine(table);
            BenchmarkRecord.Write("checkpoint", "Checkpoint save and load against the raw Azure SDK",
                "dotnet run -c Release --project Benchmarks -- checkpoint", table);
        }
        finally
        {
            await LocalAzurite.Stop(folder);
            await device.Run(1, () => { trainer.Dispose(); return true; });
        }
        return 0;
    }
}
