namespace Elastic.Training.Engine;

/// <summary>What one optimizer step did: mean loss over the global batch, the rate it used, the gradient norm before clipping.</summary>
public sealed record StepResult(long Step, double Loss, double LearningRate, double GradNorm);
