using System.Globalization;
using Elastic.Client;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Silo.Hosting;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// Step time of a dp = 1 job through the whole service (SDK, job grain, replica and shard-group grains,
/// device worker) against the bare engine running the same spec, alternating in the same run.
/// </summary>
internal static class ServiceVsEngine
{
    public static async Task<int> Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var spec = new TrainingSpec
        {
            Name = "service-bench",
            Steps = 40,
            Model = new ModelSpec { Layers = 4, DModel = 128, Heads = 4, Context = 128, Dropout = 0.1 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
            Eval = new EvalSpec { Every = 0, Batches = 1 },
            Devices = new DeviceSpec { Min = 1, Max = 1 },
        };
        var corpus = TokenCorpus.Load(spec);
        await using var cluster = await EmbeddedCluster.StartAsync([1]);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]));
        await connection.Client.WaitForDevicesAsync(1, TimeSpan.FromSeconds(30));

        var (engine, service) = (new List<double>(), new List<double>());
        for (var round = 0; round < rounds; round++)
        {
            var local = await DeviceWorker.RunOnce("bench-device", spec.Runtime.ThreadsPerDevice, () =>
            {
                using var trainer = new Trainer(spec, corpus);
                return TrainingLoop.Run(trainer);
            });
            engine.AddRange(SteadySteps(local));
            var jobId = await connection.Client.SubmitAsync(spec);
            await connection.Client.WaitForCompletionAsync(jobId);
            var remote = await connection.Client.GetReportAsync(jobId);
            if (remote.FinalParameterDigest != local.FinalParameterDigest)
                throw new InvalidOperationException("the service and the engine trained different models");
            service.AddRange(SteadySteps(remote));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"round {round + 1}: engine {Statistics.Median(SteadySteps(local)):F1} ms/step, service {Statistics.Median(SteadySteps(remote)):F1} ms/step"));
        }
        var (engineMs, serviceMs) = (Statistics.Median(engine), Statistics.Median(service));
        var inv = CultureInfo.InvariantCulture;
        var table = string.Join("\n",
            "| path | median step (ms) |",
            "|---|---:|",
            string.Create(inv, $"| bare engine (Trainer.Step on a device thread) | {engineMs:F1} |"),
            string.Create(inv, $"| service: SDK -> job grain -> replica -> shard group -> device thread | {serviceMs:F1} |"),
            "",
            string.Create(inv, $"**Service overhead per step: {(serviceMs / engineMs - 1) * 100:F1}%** (goal <= 5%). dp = 1 on a one-silo in-process cluster; GPT {spec.Model.Layers} layers, d={spec.Model.DModel}, context {spec.Model.Context}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {rounds} alternating rounds of {spec.Steps} steps, steps 4..{spec.Steps - 1} of each; both runs end with the same parameter digest."));
        Console.WriteLine(table);
        BenchmarkRecord.Write("service-vs-engine", "A dp = 1 job through the service against the bare engine",
            "dotnet run -c Release --project Benchmarks -- service-vs-engine", table);
        return 0;
    }

    /// <summary>Steps past warm-up, without the last one (it also evaluates the held-out loss).</summary>
    private static IEnumerable<double> SteadySteps(RunReport report) => report.Steps.Skip(3).SkipLast(1).Select(s => s.Milliseconds);
}
