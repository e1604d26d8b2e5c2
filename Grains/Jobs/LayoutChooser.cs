using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;
using Elastic.Planning.Hardware;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A job's planner on the devices the capacity grain offers it: the layouts its spec allows ranked on the silos it could hold
/// now (its fair share the most), and the device counts it can use at all (what it claims in the scheduler's queue). Pure; the
/// planner's per-shape costs are kept for the job's life, so each re-plan only re-ranks.
/// </summary>
public sealed class LayoutChooser(TrainingSpec spec)
{
    private readonly Planner _planner = new(spec);
    private IReadOnlyList<int>? _widths;

    public LayoutPins Pins { get; } = SpecLayout.Pins(spec);

    /// <summary>The device counts (dp x pp x tp) some layout of the spec runs on, widest first: what the job accepts (<see cref="LayoutRules.DeviceCounts"/>).</summary>
    public IReadOnlyList<int> Widths => _widths ??= LayoutRules.DeviceCounts(spec);

    /// <summary>The planner's ranking on what <paramref name="review"/> offers, within the job's share.</summary>
    public PlanRanking Rank(CapacityReview review, IReadOnlyCollection<SiloAddress>? exclude = null)
    {
        var shape = InventoryShape.Of(review.Offer ?? [], exclude);
        return shape.Devices == 0
            ? new PlanRanking([], ["no devices are free for the job"], 0, 0, HardwareProfiles.Named("cpu")!)
            : _planner.Rank(shape, Pins, keep: 3, maxDevices: review.Cap);
    }

    /// <summary>What the cost model predicts for <paramref name="layout"/> on the offered devices.</summary>
    public LayoutPrediction Predict(Layout layout, CapacityReview review)
    {
        var shape = InventoryShape.Of(review.Offer ?? []);
        return _planner.Predict(layout, shape.Devices == 0 ? HardwareProfiles.Named("cpu")! : shape.Weakest, Math.Max(1, shape.LargestNode));
    }
}
