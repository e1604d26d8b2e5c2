using System.Diagnostics;
using Elastic.Jobs.Reports;

namespace Elastic.Training.Engine;

/// <summary>Runs a trainer for all its steps on the calling (device) thread and builds the run report.</summary>
public static class TrainingLoop
{
    /// <summary>Runs the remaining steps: a trainer restored from a checkpoint continues after its last completed step.</summary>
    /// <param name="onStep">Called after each step with its record and the held-out loss when one was just measured.</param>
    public static RunReport Run(Trainer trainer, Action<StepRecord, EvalRecord?>? onStep = null, CancellationToken cancellation = default)
    {
        var spec = trainer.Spec;
        var startedAt = DateTimeOffset.UtcNow;
        var wall = Stopwatch.StartNew();
        var steps = new List<StepRecord>(spec.Steps);
        var evals = new List<EvalRecord>();
        var trainingSeconds = 0.0;
        for (var step = trainer.CompletedSteps + 1; step <= spec.Steps && !cancellation.IsCancellationRequested; step++)
        {
            var watch = Stopwatch.StartNew();
            var result = trainer.Step(step);
            var seconds = watch.Elapsed.TotalSeconds;
            trainingSeconds += seconds;
            var record = new StepRecord(step, result.Loss, result.LearningRate, result.GradNorm,
                trainer.TokensPerStep / seconds, seconds * 1000, result.Experts);
            steps.Add(record);
            EvalRecord? eval = null;
            if (step == spec.Steps || (spec.Eval.Every > 0 && step % spec.Eval.Every == 0))
            {
                eval = new EvalRecord(step, trainer.EvaluateHeldOut());
                evals.Add(eval);
            }
            onStep?.Invoke(record, eval);
        }
        return new RunReport
        {
            Spec = spec,
            StartedAt = startedAt,
            Device = ComputeDevices.Describe(trainer.Device),
            ThreadsPerDevice = spec.Runtime.ThreadsPerDevice,
            Parameters = trainer.ParameterCount,
            Steps = steps,
            HeldOut = evals,
            Completed = trainer.CompletedSteps == spec.Steps,
            WallSeconds = wall.Elapsed.TotalSeconds,
            TokensPerSecond = trainingSeconds > 0 ? trainer.TokensPerStep * steps.Count / trainingSeconds : 0,
            FinalParameterDigest = trainer.ParameterDigest(),
            Memory = trainer.Memory(replicas: 1),
        };
    }
}
