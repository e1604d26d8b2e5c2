using System.Diagnostics;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// Training steps of several specs on one device thread, alternating in rounds (the first round warms up and is not kept), so
/// that the machine's drift falls on all of them alike.
/// </summary>
internal static class AlternatingSteps
{
    /// <returns>Each spec's step times (ms) and its trainer's parameter count.</returns>
    public static Task<(List<double>[] StepMs, long[] Parameters)> Measure(IReadOnlyList<TrainingSpec> specs, TokenCorpus corpus, int threads, int rounds, int stepsPerRound) =>
        DeviceWorker.RunOnce("bench-alternating", threads, () =>
        {
            var trainers = specs.Select(s => new Trainer(s, corpus)).ToArray();
            var measured = specs.Select(_ => new List<double>()).ToArray();
            var steps = new long[trainers.Length];
            for (var round = 0; round <= rounds; round++)
                for (var t = 0; t < trainers.Length; t++)
                    for (var i = 0; i < stepsPerRound; i++)
                    {
                        var watch = Stopwatch.StartNew();
                        trainers[t].Step(++steps[t]);
                        if (round > 0) measured[t].Add(watch.Elapsed.TotalMilliseconds);
                    }
            var parameters = trainers.Select(t => t.ParameterCount).ToArray();
            foreach (var trainer in trainers) trainer.Dispose();
            return (measured, parameters);
        });
}
