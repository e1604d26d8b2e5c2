using Elastic.Jobs;

namespace Elastic.Training.Optim;

/// <summary>Linear warmup to the peak rate, then cosine decay to the minimum at the last step.</summary>
public sealed class LearningRateSchedule(OptimizerSpec spec, int totalSteps)
{
    /// <summary>The rate used by optimizer step <paramref name="step"/> (1-based).</summary>
    public double At(long step)
    {
        if (step <= spec.WarmupSteps) return spec.Lr * step / spec.WarmupSteps;
        var decaySteps = Math.Max(1, totalSteps - spec.WarmupSteps);
        var progress = Math.Min(1.0, (double)(step - spec.WarmupSteps) / decaySteps);
        return spec.MinLr + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (spec.Lr - spec.MinLr);
    }
}
