using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Sampling;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Elastic.Training.Optim.AdamW;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

/// <summary>
/// A TorchSharp Scalar made implicitly from a number is freed by its finalizer, and nothing keeps it alive
/// during the native call it was made for: a garbage collection at the wrong moment frees it mid-call
/// ("Expected false to be true ... toFloat", or a silently wrong value). These tests force collections on
/// another thread while the engine does its scalar-heavy work. Before ExplicitScalars, the optimizer test
/// failed about once per second of stress on this machine; it stresses for 6 s. The collections hit every thread,
/// so these tests run alone: tests running beside them are not written to be stressed.
/// </summary>
[Collection(nameof(NativeLifetimeTests))]
public sealed class NativeLifetimeTests
{
    [Fact]
    public async Task AdamW_steps_are_exact_while_another_thread_forces_collections()
    {
        var stress = Stopwatch.StartNew();
        var stressed = await WithCollections(() => AdamWTrajectory(step => stress.Elapsed < TimeSpan.FromSeconds(6)));
        var calm = await TestSpecs.OnDevice(() => AdamWTrajectory(step => step < stressed.Steps));
        Assert.True(stressed.Steps > 100, $"only {stressed.Steps} steps under stress");
        Assert.Equal(calm, stressed);
    }

    [Fact]
    public async Task Training_evaluation_capture_and_sampling_are_exact_while_another_thread_forces_collections()
    {
        var spec = TestSpecs.Tiny(steps: 6, dropout: 0.1) with { Eval = new EvalSpec { Every = 3, Batches = 2 } };
        Func<object> run = () =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var report = TrainingLoop.Run(trainer);
            var state = EngineCheckpoint.Capture(trainer);
            var sample = TextSampler.Sample(trainer.Model, trainer.Tokenizer, "And", tokens: 16);
            var heldOut = string.Join(" ", report.HeldOut.Select(e => e.Loss.ToString("R", CultureInfo.InvariantCulture)));
            var captured = Convert.ToHexString(SHA256.HashData(state.SelectMany(s => s.Data.ToArray()).ToArray()));
            return (report.FinalParameterDigest, heldOut, captured, sample);
        };
        var stressed = await WithCollections(run);
        Assert.Equal(await TestSpecs.OnDevice(run), stressed);
    }

    /// <summary>Runs <paramref name="work"/> on a device thread while another thread forces collections and runs finalizers.</summary>
    private static async Task<T> WithCollections<T>(Func<T> work)
    {
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(0);
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try { return await TestSpecs.OnDevice(work); }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    /// <summary>Many tiny parameters, and fixed gradients, so that a step is a few hundred short native calls with scalars and little else.</summary>
    private static (int Steps, string Digest) AdamWTrajectory(Func<int, bool> another)
    {
        var spec = new OptimizerSpec { Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-8, WeightDecay = 0.1 };
        var generator = new Generator(3, CPU);
        var parameters = Enumerable.Range(0, 2)
            .Select(i => ($"p{i:D2}", new Parameter(randn([1], generator: generator)), true)).ToList();
        foreach (var (_, p, _) in parameters) p.grad = randn([1], generator: generator);
        using var adamW = new AdamW(parameters, spec);
        var steps = 0;
        for (; another(steps); steps++) adamW.Step(1e-3);
        return (steps, ParameterDigest.Compute(parameters.Select(p => (p.Item1, (Tensor)p.Item2))));
    }
}

/// <summary>Forced collections reach every thread of the process: nothing else runs beside them.</summary>
[CollectionDefinition(nameof(NativeLifetimeTests), DisableParallelization = true)]
public sealed class NativeLifetimeCollection;
