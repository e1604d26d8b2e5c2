using System.Diagnostics;
using System.Globalization;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// Engine tokens/s against a minimal hand-written TorchSharp loop training the same model on the same
/// batches: plain .grad accumulation, clip_grad_norm_, torch.optim.AdamW. The two alternate in rounds on
/// the same device thread so that machine noise hits both; the figure is the ratio of median step times.
/// </summary>
internal static class EngineVsBareLoop
{
    public static async Task<int> Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 7;
        const int stepsPerRound = 8;
        var spec = new TrainingSpec
        {
            Name = "bench",
            Steps = rounds * stepsPerRound + 2,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 4, Vocab = 256, Context = 128, Dropout = 0.1 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
            Runtime = new RuntimeSpec { ThreadsPerDevice = 1 },
        };
        var corpus = TokenCorpus.Load(spec);
        var (engine, bare) = await DeviceWorker.RunOnce("bench-device", spec.Runtime.ThreadsPerDevice, () => Measure(spec, corpus, rounds, stepsPerRound));

        var tokensPerStep = (double)spec.Batch.Global * spec.Model.Context;
        var (engineMs, bareMs) = (Statistics.Median(engine), Statistics.Median(bare));
        var ratio = bareMs / engineMs;
        var inv = CultureInfo.InvariantCulture;
        var table = string.Join("\n",
            "| loop | median step (ms) | tokens/s |",
            "|---|---:|---:|",
            string.Create(inv, $"| Elastic engine (Trainer.Step) | {engineMs:F1} | {tokensPerStep / engineMs * 1000:N0} |"),
            string.Create(inv, $"| bare TorchSharp loop | {bareMs:F1} | {tokensPerStep / bareMs * 1000:N0} |"),
            "",
            string.Create(inv, $"**Engine / bare tokens/s: {ratio:F3}** (goal >= 0.95). Model: GPT {spec.Model.Layers} layers, d={spec.Model.DModel}, {spec.Model.Heads} heads, context {spec.Model.Context}, dropout {spec.Model.Dropout}; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; {spec.Runtime.ThreadsPerDevice} thread; {rounds} alternating rounds of {stepsPerRound} steps, medians over all steps."));
        Console.WriteLine(table);
        BenchmarkRecord.Write("engine-vs-bare", "Engine against a bare TorchSharp loop",
            "dotnet run -c Release --project Benchmarks -- engine-vs-bare", table);
        return 0;
    }

    private static (List<double> Engine, List<double> Bare) Measure(TrainingSpec spec, TokenCorpus corpus, int rounds, int stepsPerRound)
    {
        using var trainer = new Trainer(spec, corpus);
        using var bare = new BareLoop(spec, corpus);
        var (engineTimes, bareTimes) = (new List<double>(), new List<double>());
        trainer.Step(1);
        bare.Step(1, trainer);
        long step = 2;
        for (var round = 0; round < rounds; round++)
        {
            var firstStep = step;
            for (var i = 0; i < stepsPerRound; i++) engineTimes.Add(Time(() => trainer.Step(step++)));
            step = firstStep;
            for (var i = 0; i < stepsPerRound; i++) bareTimes.Add(Time(() => bare.Step(step++, trainer)));
        }
        return (engineTimes, bareTimes);
    }

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalMilliseconds;
    }

    /// <summary>What a user would write by hand with TorchSharp alone.</summary>
    private sealed class BareLoop : IDisposable
    {
        private readonly TrainingSpec _spec;
        private readonly TokenCorpus _corpus;
        private readonly DecoderModel _model;
        private readonly optim.Optimizer _optimizer;

        public BareLoop(TrainingSpec spec, TokenCorpus corpus)
        {
            _spec = spec;
            _corpus = corpus;
            _model = new DecoderModel(spec.Model, spec.Seed);
            var o = spec.Optimizer;
            _optimizer = optim.AdamW(Parameters, o.Lr, o.Beta1, o.Beta2, o.Eps, o.WeightDecay);
        }

        private IEnumerable<TorchSharp.Modules.Parameter> Parameters => _model.ParametersByName().Select(p => p.Parameter);

        /// <summary>One step on the same samples as the engine (the trainer only supplies sample indices).</summary>
        public void Step(long step, Trainer samples)
        {
            using var scope = NewDisposeScope();
            var micro = _spec.Batch.MicroBatchesPerStep;
            using var microBatches = ((double)micro).ToScalar(); // explicit: implicit scalars can be finalized mid-call
            _optimizer.zero_grad();
            for (var m = 0; m < micro; m++)
            {
                var windows = samples.SamplesOf(step, m).Select(_corpus.TrainSample).ToArray();
                var ids = windows.SelectMany(w => w.Data.WindowTokens(w.Window).ToArray().Select(t => (long)t)).ToArray();
                var width = _corpus.Window;
                var batch = tensor(ids, [windows.Length, width]);
                var loss = _model.Loss(batch.narrow(1, 0, width - 1), batch.narrow(1, 1, width - 1), keys: null);
                loss.div(microBatches).backward();
            }
            nn.utils.clip_grad_norm_(Parameters, _spec.Optimizer.ClipNorm);
            _optimizer.step();
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            _model.Dispose();
        }
    }
}
