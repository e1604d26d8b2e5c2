using System.Diagnostics;
using System.Globalization;
using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using TorchSharp;
using static TorchSharp.torch;
using AdamW = Elastic.Training.Optim.AdamW;

namespace Elastic.Benchmarks;

/// <summary>
/// One optimizer step over a GPT's parameters: the engine's AdamW (a few operations over flat parameter, gradient and
/// moment buffers) against TorchSharp's optim.AdamW (operations per parameter), on the same device, alternating in rounds.
/// On a GPU the per-parameter kernel launches are the cost the flat buffers remove.
/// </summary>
internal static class AdamWStep
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var layers = args.Length > 0 ? int.Parse(args[0], inv) : 12;
        var dModel = args.Length > 1 ? int.Parse(args[1], inv) : 768;
        const int rounds = 7, stepsPerRound = 5;
        var device = ComputeDevices.CudaCount > 0 ? new Device(TorchSharp.DeviceType.CUDA, 0) : CPU;
        var spec = new ModelSpec { Layers = layers, DModel = dModel, Heads = 12, Vocab = 256, Context = 1024 };
        var (flat, perParameter, count, tensors) = await DeviceWorker.RunOnce("bench-adamw", Environment.ProcessorCount, () => Measure(spec, device, rounds, stepsPerRound));
        var (flatMs, perParameterMs) = (Statistics.Median(flat), Statistics.Median(perParameter));
        var table = string.Join("\n",
            "| optimizer | median step (ms) |",
            "|---|---:|",
            string.Create(inv, $"| Elastic AdamW over flat buffers | {flatMs:F2} |"),
            string.Create(inv, $"| TorchSharp optim.AdamW, per parameter | {perParameterMs:F2} |"),
            "",
            string.Create(inv, $"**Per-parameter / flat step time: {perParameterMs / flatMs:F2}x.** {count / 1e6:F1} M parameters in {tensors} tensors (GPT {layers} layers, d {dModel}, context 1024, byte vocabulary) on {ComputeDevices.Describe(device)}, {Environment.ProcessorCount} intra-op threads; {rounds} alternating rounds of {stepsPerRound} steps, medians over all steps. The flat step gives every parameter the bits of a step per parameter (test: OptimizerTests); on a CPU it runs in slices of 2^20 values that stay in cache, on a GPU over the whole buffer."));
        Console.WriteLine(table);
        BenchmarkRecord.Write(device.type == TorchSharp.DeviceType.CUDA ? "adamw-step-gpu" : "adamw-step", $"One AdamW step, flat buffers against per parameter ({(device.type == TorchSharp.DeviceType.CUDA ? "GPU" : "CPU")})",
            $"dotnet run -c Release --project Benchmarks -- adamw {layers} {dModel}", table);
        return 0;
    }

    private static (List<double> Flat, List<double> PerParameter, long Parameters, int Tensors) Measure(ModelSpec spec, Device device, int rounds, int stepsPerRound)
    {
        var optimizer = new OptimizerSpec();
        using var ours = new DecoderModel(spec, seed: 1, device: device);
        using var theirs = new DecoderModel(spec, seed: 1, device: device);
        var named = ours.ParametersByName();
        var theirParameters = theirs.ParametersByName().Select(p => p.Parameter).ToList();
        var count = named.Sum(p => p.Parameter.numel());
        using var small = 1e-3.ToScalar(); // explicit: an implicit Scalar can be finalized mid-call
        using var gradient = randn(count, device: device).mul_(small);
        foreach (var p in theirParameters) p.grad = randn_like(p).mul_(small);
        using var flat = new AdamW(named, optimizer);
        using var perParameter = optim.AdamW(theirParameters, optimizer.Lr, optimizer.Beta1, optimizer.Beta2, optimizer.Eps, optimizer.WeightDecay);
        var (flatTimes, perParameterTimes) = (new List<double>(), new List<double>());
        for (var round = 0; round <= rounds; round++)
        {
            for (var i = 0; i < stepsPerRound; i++)
            {
                var a = Time(() => flat.Step(optimizer.Lr, gradient), device);
                var b = Time(() => perParameter.step(), device);
                if (round == 0) continue; // warm-up
                flatTimes.Add(a);
                perParameterTimes.Add(b);
            }
        }
        return (flatTimes, perParameterTimes, count, named.Count);
    }

    private static double Time(Action step, Device device)
    {
        var watch = Stopwatch.StartNew();
        step();
        if (device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(device);
        return watch.Elapsed.TotalMilliseconds;
    }
}
