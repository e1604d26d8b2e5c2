using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests;

/// <summary>Small specs and helpers shared by the engine tests.</summary>
internal static class TestSpecs
{
    private static readonly Lazy<int[]> BundledTokens = new(() =>
        new ByteTokenizer().Encode(CorpusSource.ReadBundledText("kjv")));

    /// <summary>A model small enough for a step to take milliseconds on one thread.</summary>
    public static TrainingSpec Tiny(int steps = 10, int global = 16, int micro = 4, double dropout = 0.1, ulong seed = 7) => new()
    {
        Name = "test",
        Seed = seed,
        Steps = steps,
        Model = new ModelSpec { Layers = 2, DModel = 32, Heads = 4, Vocab = 256, Context = 32, Dropout = dropout },
        Batch = new BatchSpec { Global = global, Micro = micro },
        Optimizer = new OptimizerSpec { Lr = 3e-3, MinLr = 3e-4, WarmupSteps = Math.Min(2, steps) },
        Eval = new EvalSpec { Every = 0, Batches = 2 },
    };

    /// <summary>The bundled corpus, tokenized once per test process.</summary>
    public static TokenCorpus Corpus(TrainingSpec spec) => TokenCorpus.FromTokens(spec, new ByteTokenizer(), BundledTokens.Value);

    /// <summary>Every id of <paramref name="source"/>, in order.</summary>
    public static int[] All(ITokenSource source)
    {
        var ids = new int[source.Length];
        source.Read(0, ids);
        return ids;
    }

    /// <summary>The finalParameterDigest of <paramref name="spec"/> trained on one device by the engine alone: what every layout must end with.</summary>
    public static Task<string> ReferenceDigest(TrainingSpec spec) => OnDevice(() =>
    {
        using var trainer = new Trainer(spec, Corpus(spec));
        return TrainingLoop.Run(trainer).FinalParameterDigest;
    });

    /// <summary>Every step of <paramref name="spec"/> on one device: what each returned and the digest at the end (the reference for layouts).</summary>
    public static Task<(List<StepResult> Steps, string Digest)> OneDeviceSteps(TrainingSpec spec) => OnDevice(() =>
    {
        using var trainer = new Trainer(spec, Corpus(spec));
        var steps = Enumerable.Range(1, spec.Steps).Select(s => trainer.Step(s)).ToList();
        return (steps, trainer.ParameterDigest());
    });

    /// <summary>The data-plane secret the ranks of a test's groups share.</summary>
    public static GroupSecret Secret { get; } = GroupSecret.New();

    /// <summary>Runs tensor work on a dedicated one-thread device, as the service does.</summary>
    public static Task<T> OnDevice<T>(Func<T> work) => DeviceWorker.RunOnce("test-device", 1, work);
}
