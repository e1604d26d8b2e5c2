using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A layout asked for a running job (`elastic replan JOB --plan dp=1,pp=2,tp=2,zero=1`): checked against the job's spec and the
/// cluster before anything changes, every reason it cannot run given at once with its numbers.
/// </summary>
public static class LayoutRequest
{
    /// <summary>Parses and checks <paramref name="plan"/>; throws <see cref="ArgumentException"/> naming every problem.</summary>
    /// <param name="largestSilo">The most devices any one silo has (a tensor-parallel group lives on one silo).</param>
    public static ParallelLayout Check(string plan, TrainingSpec spec, int largestSilo)
    {
        ParallelLayout layout;
        try
        {
            layout = ParallelLayout.Parse(plan);
        }
        catch (ParallelGridException e)
        {
            throw new ArgumentException($"--plan: {e.Message}");
        }
        var problems = LayoutRules.Problems(spec, SpecLayout.Asked(spec, SpecLayout.At(spec, layout.Grid.Dp), layout), largestSilo);
        return problems.Count == 0 ? layout : throw new ArgumentException($"--plan {plan}: {string.Join("; ", problems)}; nothing changed");
    }
}
