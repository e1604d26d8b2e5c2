using Elastic.Jobs.Reports;

namespace Elastic.Training.Engine;

/// <summary>
/// What one optimizer step did: mean loss over the global batch, the rate it used, the gradient norm before clipping, and
/// with MoE layers what the experts did.
/// </summary>
public sealed record StepResult(long Step, double Loss, double LearningRate, double GradNorm, ExpertLoad? Experts = null);
