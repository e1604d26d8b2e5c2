using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Jobs;

/// <summary>
/// A spec's parallel fields as layouts: what it pins (<see cref="Pins"/>), the layout it runs on when nothing chooses for it
/// (<see cref="At"/>: every unpinned dimension neutral), and the spec a unit runs once a layout is chosen (<see cref="Resolve"/>).
/// </summary>
public static class SpecLayout
{
    public static LayoutPins Pins(TrainingSpec spec)
    {
        var p = spec.Parallel;
        return new LayoutPins(p.Pipeline, p.Tensor, p.Expert, p.Zero, p.VirtualStages, spec.Runtime.Recompute,
            p.Schedule is { } schedule ? schedule == PipelineSchedule.Interleaved : null);
    }

    /// <summary>
    /// The spec's own layout at <paramref name="dp"/> replicas: its pinned dimensions, the neutral value of the others (pp, tp 1,
    /// ZeRO 0, no recomputation), experts spread over <see cref="SpecValidator.ExpertRanks"/> of the pinned ep (or not spread).
    /// </summary>
    public static Layout At(TrainingSpec spec, int dp)
    {
        var p = spec.Parallel;
        var interleaved = p.Schedule == PipelineSchedule.Interleaved;
        dp = Math.Max(1, dp);
        return new Layout(dp, Math.Max(1, p.Pipeline ?? 1), Math.Max(1, p.Tensor ?? 1),
            SpecValidator.ExpertRanks(p.Expert ?? 1, dp), p.Zero ?? 0,
            interleaved ? Math.Max(1, p.VirtualStages ?? 1) : 1, spec.Runtime.Recompute ?? Recomputation.None, interleaved);
    }

    /// <summary>
    /// The whole layout <paramref name="asked"/> names (<c>--plan</c>, <c>parallel.start</c>): its grid and ZeRO stage, the rest as
    /// in <paramref name="basis"/> (the job's layout now, or the spec's own); experts spread as far as the new width allows, and
    /// interleaving kept only where the new pipeline still has the layers for it.
    /// </summary>
    public static Layout Asked(TrainingSpec spec, Layout basis, ParallelLayout asked)
    {
        var (dp, pp) = (asked.Grid.Dp, asked.Grid.Pp);
        var interleave = pp > 1 && pp * basis.VirtualStages <= spec.Model.Layers;
        return basis with
        {
            Dp = dp,
            Pp = pp,
            Tp = asked.Grid.Tp,
            Ep = SpecValidator.ExpertRanks(asked.Experts ?? basis.Ep, dp),
            Zero = asked.Zero ?? basis.Zero,
            VirtualStages = interleave ? basis.VirtualStages : 1,
            Interleaved = interleave && basis.Interleaved,
        };
    }

    /// <summary>The spec with every parallel field set to <paramref name="layout"/>'s: what the units of a plan run.</summary>
    public static TrainingSpec Resolve(TrainingSpec spec, Layout layout) => spec with
    {
        Parallel = spec.Parallel with
        {
            Pipeline = layout.Pp, Tensor = layout.Tp, Expert = layout.Ep, Zero = layout.Zero,
            VirtualStages = layout.VirtualStages, Schedule = layout.Schedule,
        },
        Runtime = spec.Runtime with { Recompute = layout.Recompute },
    };
}
