using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// The Elastic engine against a plain PyTorch loop (Benchmarks/baselines/gpt_pytorch.py, run with the machine's python3)
/// training the same GPT on the same GPU in the same session, in fp32 and bf16 (PyTorch: autocast): tokens/s, achieved
/// TFLOP/s and MFU against the card's dense peak, and the ratios. Needs a CUDA device; see Benchmarks/gpu-check.sh.
/// </summary>
internal static class GpuVsPyTorch
{
    private const int Warmup = 3;

    public static async Task<int> Run(string[] args)
    {
        var steps = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20;
        var micro = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 16;
        if (ComputeDevices.CudaCount == 0)
        {
            Console.Error.WriteLine("gpu-vs-pytorch needs a CUDA device, and libtorch sees none (run it through Benchmarks/gpu-check.sh on the GPU machine)");
            return 2;
        }
        var device = new Device(TorchSharp.DeviceType.CUDA, 0);
        var card = ComputeDevices.Describe(device);
        var rows = new List<string>();
        var ratios = new List<string>();
        foreach (var precision in new[] { "fp32", "bf16" })
        {
            var plain = Spec(precision, micro, steps);
            var torchMs = MeasurePyTorch(plain, steps);
            long parameters = 0;
            // S = 1 is PyTorch's model exactly; the default S computes every split layer in virtual tensor shards, the
            // price of giving every tensor-parallel degree the same bits.
            foreach (var shards in new[] { 1, plain.Model.Shards })
            {
                var spec = plain with { Model = plain.Model with { TensorShards = shards } };
                var corpus = TokenCorpus.Load(spec);
                (var elasticMs, parameters) = await DeviceWorker.RunOnce("bench-gpu", 1, () => MeasureEngine(spec, corpus, device));
                var flopsPerStep = ModelFlops.PerToken(spec.Model, parameters) * TokensPerStep(spec);
                rows.Add(Row($"Elastic engine, {precision}, model.tensorShards {shards}", elasticMs, spec, flopsPerStep, card, precision));
                ratios.Add(string.Create(CultureInfo.InvariantCulture, $"{precision} S = {shards}: {torchMs / elasticMs:F3}{(shards == 1 ? $" (goal >= {(precision == "fp32" ? "0.95" : "0.90")})" : "")}"));
                Console.WriteLine($"{precision}, S = {shards}: Elastic {elasticMs:F1} ms/step, PyTorch {torchMs:F1} ms/step");
            }
            rows.Add(Row($"PyTorch loop, {(precision == "bf16" ? "bf16 autocast" : precision)}", torchMs, plain, ModelFlops.PerToken(plain.Model, parameters) * TokensPerStep(plain), card, precision));
        }
        var table = string.Join("\n", [
            "| loop | median step (ms) | tokens/s | TFLOP/s | MFU |",
            "|---|---:|---:|---:|---:|",
            .. rows,
            "",
            $"**Elastic / PyTorch tokens/s: {string.Join("; ", ratios)}.** Card: {card}. GPT 12 layers, d 768, 12 heads, context 1024, byte vocabulary, dropout 0.1; " +
            $"batch 32 = {32 / micro} x {micro}; medians over {steps} steps after {Warmup} warm-up steps. FLOPs per token: 6 x parameters + 12 x layers x d x context; MFU against the card's dense peak."]);
        Console.WriteLine(table);
        BenchmarkRecord.Write("gpu-vs-pytorch", "The engine against a plain PyTorch loop on one GPU",
            "bash Benchmarks/gpu-check.sh (elastic-bench gpu-vs-pytorch)", table);
        return 0;
    }

    private static TrainingSpec Spec(string precision, int micro, int steps) => new()
    {
        Name = "gpu-bench",
        Steps = Warmup + steps,
        Model = new ModelSpec { Layers = 12, DModel = 768, Heads = 12, Vocab = 256, Context = 1024, Dropout = 0.1 },
        Batch = new BatchSpec { Global = 32, Micro = micro },
        Optimizer = new OptimizerSpec { WarmupSteps = 1 },
        Runtime = new RuntimeSpec { Precision = precision },
    };

    private static (double MedianMs, long Parameters) MeasureEngine(TrainingSpec spec, TokenCorpus corpus, Device device)
    {
        using var trainer = new Trainer(spec, corpus, device);
        var times = new List<double>();
        for (var step = 1; step <= spec.Steps; step++)
        {
            var watch = Stopwatch.StartNew();
            trainer.Step(step); // ends with a host read of the gradient norm: the step's kernels have run
            if (step > Warmup) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return (Statistics.Median(times), trainer.ParameterCount);
    }

    private static double MeasurePyTorch(TrainingSpec spec, int steps)
    {
        var script = Path.Combine(BenchmarkRecord.RepositoryRoot(), "Benchmarks", "baselines", "gpt_pytorch.py");
        var arguments = string.Create(CultureInfo.InvariantCulture,
            $"{script} --precision {spec.Runtime.Precision} --micro {spec.Batch.Micro} --batch {spec.Batch.Global} --steps {steps} --warmup {Warmup}");
        using var python = Process.Start(new ProcessStartInfo("python3", arguments) { RedirectStandardOutput = true, UseShellExecute = false })
            ?? throw new InvalidOperationException("could not start python3");
        var output = python.StandardOutput.ReadToEnd();
        python.WaitForExit();
        if (python.ExitCode != 0) throw new InvalidOperationException($"the PyTorch baseline failed with exit code {python.ExitCode}");
        using var result = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        return result.RootElement.GetProperty("median_step_ms").GetDouble();
    }

    private static long TokensPerStep(TrainingSpec spec) => (long)spec.Batch.Global * spec.Model.Context;

    private static string Row(string name, double ms, TrainingSpec spec, double flopsPerStep, string card, string precision)
    {
        var tflops = flopsPerStep / (ms / 1000) / 1e12;
        var peak = ModelFlops.PeakTflops(card, precision);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {ms:F1} | {TokensPerStep(spec) / (ms / 1000):N0} | {tflops:F1} | {(peak is { } p ? $"{tflops / p * 100:F1}%" : "n/a")} |");
    }
}
