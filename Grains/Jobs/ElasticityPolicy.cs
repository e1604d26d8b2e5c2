using Elastic.GrainInterfaces;
using Elastic.Parallelism;

namespace Elastic.Grains.Jobs;

/// <summary>
/// When a running job re-plans on its own, decided at each step boundary from the capacity grain's review (pure; time
/// from an injected <see cref="TimeProvider"/>): devices leaving force a re-plan at once; so does a fair share below what
/// the job holds (a higher-priority job waits: it shrinks now); a layout a user asked for is taken next; growth onto new devices waits until they have been free for <see cref="JobOptions.JoinSettle"/> (so silos
/// joining together are taken in one re-plan) and <see cref="JobOptions.MinDwell"/> has passed since the last re-plan, and then only
/// to a layout worth moving to.
/// </summary>
public sealed class ElasticityPolicy(JobOptions options, TimeProvider time)
{
    private DateTimeOffset _lastReplan = time.GetUtcNow();
    private DateTimeOffset? _widerSince;
    private Layout? _requested;

    /// <summary>Takes <paramref name="layout"/> at the next step boundary (a later request replaces an earlier one not yet taken).</summary>
    public void Request(Layout layout) => _requested = layout;

    /// <summary>The job runs on a new plan: the dwell starts again.</summary>
    public void Replanned()
    {
        _lastReplan = time.GetUtcNow();
        _widerSince = null;
    }

    /// <summary>The re-plan to make at this step boundary of a job on <paramref name="plan"/>, or null.</summary>
    /// <param name="better">
    /// Once new devices have settled: a layout on what the job could hold now that is worth moving to, and why (the job's
    /// planner and its weighing of the move); null: stay. Not given: grow onto them with whatever layout the re-plan finds.
    /// </param>
    public ReplanChange? Decide(CapacityReview review, ParallelPlan plan, Func<(Layout Target, string Why)?>? better = null)
    {
        if (review.Leaving.Count > 0)
            return new ReplanChange(review.Kind switch
            {
                LeaveKind.Preempted => ReplanCause.Preemption,
                LeaveKind.Lost => ReplanCause.Failure,
                _ => ReplanCause.Leave,
            }, review.LeavingReason ?? "devices are leaving") { Leaving = review.Leaving };
        if (review.Yield is { } yield && review.WidestPlan < plan.DeviceCount)
            return new ReplanChange(ReplanCause.FairShare, $"{yield}: {plan.DeviceCount} -> {review.WidestPlan} device(s)");
        if (_requested is { } requested)
        {
            _requested = null;
            return new ReplanChange(ReplanCause.Request, $"{requested} asked for") { Target = requested };
        }
        if (review.WidestPlan <= plan.DeviceCount)
        {
            _widerSince = null;
            return null;
        }
        var now = time.GetUtcNow();
        _widerSince ??= now;
        if (now - _widerSince < options.JoinSettle || now - _lastReplan < options.MinDwell) return null;
        if (better is null) return new ReplanChange(ReplanCause.Join, $"devices joined: {plan.DeviceCount} device(s) can grow to {review.WidestPlan}");
        return better() is { } found ? new ReplanChange(ReplanCause.Join, $"devices joined: {found.Why}") { Target = found.Target } : null;
    }
}
