using System.Globalization;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;
using Elastic.Planning.Hardware;

namespace Elastic.Planning;

/// <summary>A layout with what the cost model predicts for it.</summary>
public sealed record LayoutPrediction(Layout Layout, MemoryEstimate Memory, StepTimeEstimate Step, double TokensPerSecond, double? Mfu)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Layout}: {TokensPerSecond:N0} tokens/s, {StepTimeEstimate.Format(Step.Seconds)} per step{(Mfu is { } mfu ? $", MFU {mfu:P0}" : "")}, {MemoryEstimate.MiB(Memory.TotalBytes)} per device");
}

/// <summary>
/// What the planner found: the best layouts, fastest first (the first is its choice; none when nothing fits), why each family
/// of layouts it did not offer was rejected, and how many layouts it weighed.
/// </summary>
public sealed record PlanRanking(IReadOnlyList<LayoutPrediction> Best, IReadOnlyList<string> Rejected, long Considered, long Fitting, DeviceProfile Device)
{
    public LayoutPrediction? Choice => Best.Count > 0 ? Best[0] : null;
}

/// <summary>
/// Chooses a job's layout for the devices it may use: enumerates every layout the spec and the devices allow (tp inside a
/// node, pp and dp across nodes, v, ep, ZeRO stage and recomputation; the spec's pinned dimensions kept), drops those whose
/// busiest device would run out of memory, predicts each one's step time (<see cref="StepTimeModel"/>) and ranks them by
/// throughput. ZeRO shards the optimizer state only as far as memory needs (replicated state survives losing any replica).
/// Among layouts predicted equally fast it prefers fewer devices, then less sharding and recomputation. Pure; the
/// per-shape stage costs are kept, so a re-plan on another set of devices weighs the same layouts again quickly.
/// </summary>
public sealed class Planner(TrainingSpec spec)
{
    /// <summary>Of a device's memory, what a layout may plan to use (the rest: runtime context, allocator fragmentation).</summary>
    public const double MemoryHeadroom = 0.9;

    private readonly Dictionary<(int Tp, int Pp, int V, int Hosted), StageCosts> _costs = [];
    private readonly Dictionary<int, IReadOnlyList<ModelChunk>> _chunks = [];

    public TrainingSpec Spec => spec;

    /// <param name="cluster">The devices the job may use, in nodes.</param>
    /// <param name="pins">Dimensions to keep (the spec's, <see cref="SpecLayout.Pins"/>).</param>
    /// <param name="keep">How many of the best layouts to return.</param>
    /// <param name="maxDevices">The most devices the job may hold now (its fair share), below devices.max.</param>
    public PlanRanking Rank(ClusterShape cluster, LayoutPins pins, int keep = 5, int? maxDevices = null)
    {
        var most = Math.Min(spec.Devices.Max, maxDevices ?? int.MaxValue);
        var device = cluster.Weakest;
        var limit = (long)(device.MemoryBytes * MemoryHeadroom);
        var largest = cluster.LargestNode;
        var best = new List<LayoutPrediction>();
        var rejected = new List<string>();
        long considered = 0, fitting = 0;

        foreach (var tp in TensorDegrees(pins, largest, rejected))
        {
            var blocks = cluster.Blocks(tp);
            foreach (var (pp, v, interleaved) in PipelineShapes(pins, tp, blocks))
            {
                var family = new Layout(1, pp, tp, VirtualStages: v, Interleaved: interleaved);
                var unit = LayoutRules.BlockUnit(spec, family);
                var widths = LayoutRules.Widths(spec, family, most, blocks);
                if (widths.Count == 0)
                {
                    rejected.Add($"{Family(family)}: {Why(family, unit, blocks, most)}");
                    continue;
                }
                LayoutPrediction? familyBest = null;
                MemoryEstimate? smallest = null;
                Layout? smallestLayout = null;
                foreach (var dp in widths)
                    foreach (var ep in ExpertDegrees(pins, dp))
                        foreach (var recompute in Recomputations(pins))
                            // ZeRO is a memory tool: each layout shards its optimizer state only as far as it must to fit. Replicated
                            // state survives the loss of any replica; a sharded part lost with its replica comes from the last checkpoint.
                            foreach (var zero in ZeroStages(pins, dp, ep))
                            {
                                considered++;
                                var layout = new Layout(dp, pp, tp, ep, zero, v, recompute, interleaved);
                                var costs = Costs(tp, pp, v, MemoryEstimate.HostedExperts(spec, layout));
                                var memory = MemoryEstimate.Of(spec, costs, layout);
                                if (memory.DeviceBytes(device.HostMemory) > limit)
                                {
                                    if (smallest is null || memory.DeviceBytes(device.HostMemory) < smallest.DeviceBytes(device.HostMemory)) (smallest, smallestLayout) = (memory, layout);
                                    continue;
                                }
                                fitting++;
                                var step = StepTimeModel.Of(spec, costs, layout, device, largest);
                                var prediction = Predict(layout, memory, step, device);
                                Offer(best, prediction, keep);
                                if (familyBest is null || Better(prediction, familyBest)) familyBest = prediction;
                                break;
                            }
                if (familyBest is null && smallest is not null)
                    rejected.Add($"{Family(family)}: out of memory: the smallest, {smallestLayout}, needs {MemoryEstimate.MiB(smallest.DeviceBytes(device.HostMemory))} per device of {MemoryEstimate.MiB(limit)} usable");
            }
        }
        return new PlanRanking(best, rejected, considered, fitting, device);
    }

    /// <summary>The prediction for one layout on <paramref name="device"/> in nodes of <paramref name="devicesPerNode"/> (for a layout running now, or asked for).</summary>
    public LayoutPrediction Predict(Layout layout, DeviceProfile device, int devicesPerNode)
    {
        var costs = Costs(layout.Tp, layout.Pp, layout.VirtualStages, MemoryEstimate.HostedExperts(spec, layout));
        return Predict(layout, MemoryEstimate.Of(spec, costs, layout), StepTimeModel.Of(spec, costs, layout, device, devicesPerNode), device);
    }

    private LayoutPrediction Predict(Layout layout, MemoryEstimate memory, StepTimeEstimate step, DeviceProfile device)
    {
        var tokens = (double)spec.Batch.Global * spec.Model.Context / step.Seconds;
        var mfu = device.Published ? tokens * ModelFlops.PerToken(spec.Model) / (layout.Devices * device.Peak(spec.Runtime.Precision) * 1e12) : (double?)null;
        return new LayoutPrediction(layout, memory, step, tokens, mfu);
    }

    private StageCosts Costs(int tp, int pp, int v, int hosted)
    {
        if (_costs.TryGetValue((tp, pp, v, hosted), out var costs)) return costs;
        var chunks = pp == 1 ? null : ChunksOf(pp * v);
        return _costs[(tp, pp, v, hosted)] = new StageCosts(spec, tp, pp, v, hosted, chunks);
    }

    private IReadOnlyList<ModelChunk> ChunksOf(int count) =>
        _chunks.TryGetValue(count, out var chunks) ? chunks : _chunks[count] = PipelineSplit.Chunks(spec.Model, count);

    /// <summary>tp: powers of two dividing model.tensorShards that fit one node, or the pinned one.</summary>
    private IEnumerable<int> TensorDegrees(LayoutPins pins, int largest, List<string> rejected)
    {
        var shards = spec.Model.Shards;
        var degrees = pins.Tp is { } tp ? [tp] : Enumerable.Range(0, 31).Select(i => 1 << i).TakeWhile(t => t <= shards).ToList();
        foreach (var degree in degrees)
        {
            if (shards % degree != 0) rejected.Add($"tp={degree}: does not divide model.tensorShards {shards}");
            else if (degree > largest) rejected.Add($"tp={degree}: needs {degree} devices on one node; the largest has {largest}");
            else yield return degree;
        }
    }

    /// <summary>(pp, v, interleaved): every depth the layers and free groups allow, each with every v up to 8 whose chunks have a layer each.</summary>
    private IEnumerable<(int Pp, int V, bool Interleaved)> PipelineShapes(LayoutPins pins, int tp, long blocks)
    {
        var layers = spec.Model.Layers;
        var depths = pins.Pp is { } pinned ? [pinned] : Enumerable.Range(1, (int)Math.Min(layers, blocks));
        foreach (var pp in depths)
        {
            if (pp == 1)
            {
                yield return (1, 1, false);
                continue;
            }
            var most = Math.Min(8, layers / pp);
            var vs = pins.VirtualStages is { } v ? [v] : pins.Interleaved == false ? [1] : Enumerable.Range(1, Math.Max(1, most));
            foreach (var virtualStages in vs)
                if (virtualStages == 1) yield return (pp, 1, pins.Interleaved == true);
                else yield return (pp, virtualStages, true);
        }
    }

    /// <summary>Why no width of a family runs: its schedule, or the devices it would need.</summary>
    private string Why(Layout family, int unit, long blocks, int most)
    {
        if (LayoutRules.PipelineProblems(spec, family, unit) is [var problem, ..]) return problem;
        var narrowest = family.ReplicaDevices;
        if (narrowest > most)
            return most < spec.Devices.Max ? $"one replica needs {narrowest} devices, more than the job's share of {most}" : $"one replica needs {narrowest} devices, more than devices.max {spec.Devices.Max}";
        if (family.Pp > blocks) return $"one replica needs {family.Pp} group(s) of {family.Tp} on one node, the nodes hold {blocks}";
        return $"no data-parallel width fits: devices.min {spec.Devices.Min} needs more replicas than the {spec.Batch.MicroBatchesPerStep} micro-batches per step or the nodes ({blocks} group(s) of {family.Tp}) allow";
    }

    /// <summary>ep: the widest power of two up to the pinned degree dividing dp (as the engine spreads experts); else every power of two dividing the experts and dp.</summary>
    private IEnumerable<int> ExpertDegrees(LayoutPins pins, int dp)
    {
        if (spec.Model.Moe is not { } moe) return [1];
        if (pins.Ep is { } ep) return [SpecValidator.ExpertRanks(ep, dp)];
        return Enumerable.Range(0, 31).Select(i => 1 << i).TakeWhile(e => e <= moe.Experts && e <= dp).Where(e => moe.Experts % e == 0 && dp % e == 0);
    }

    private static IEnumerable<int> ZeroStages(LayoutPins pins, int dp, int ep)
    {
        if (pins.Zero is { } zero) return [zero];
        // Over one replica every stage is ZeRO 0.
        if (dp == 1) return [0];
        return ep > 1 ? [0, 1, 2] : [0, 1, 2, 3];
    }

    private static IEnumerable<string> Recomputations(LayoutPins pins) => pins.Recompute is { } recompute ? [recompute] : Recomputation.All;

    private static string Family(Layout family) =>
        $"tp={family.Tp},pp={family.Pp}{(family.VirtualStages > 1 ? $",v={family.VirtualStages}" : "")}";

    /// <summary>Keeps the best <paramref name="keep"/> predictions, best first.</summary>
    private static void Offer(List<LayoutPrediction> best, LayoutPrediction prediction, int keep)
    {
        var at = best.FindIndex(b => Better(prediction, b));
        if (at < 0)
        {
            if (best.Count < keep) best.Add(prediction);
            return;
        }
        best.Insert(at, prediction);
        if (best.Count > keep) best.RemoveAt(best.Count - 1);
    }

    /// <summary>Faster first; within 0.01 % the simpler layout: fewer devices, lower ZeRO stage, less recomputation, smaller tp, then pp.</summary>
    public static bool Better(LayoutPrediction a, LayoutPrediction b)
    {
        if (Math.Abs(a.TokensPerSecond - b.TokensPerSecond) > 1e-4 * Math.Max(a.TokensPerSecond, b.TokensPerSecond))
            return a.TokensPerSecond > b.TokensPerSecond;
        static (int, int, int, int, int, int) Simplicity(Layout l) =>
            (l.Devices, l.Zero, Recomputation.All.ToList().IndexOf(l.Recompute), l.Tp, l.Pp, l.VirtualStages);
        return Simplicity(a.Layout).CompareTo(Simplicity(b.Layout)) < 0;
    }
}
