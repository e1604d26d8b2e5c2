using System.Globalization;
using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Planning;

/// <summary>The planner's ranking as a person reads it: the best layouts, each one's memory and step-time terms, and why the other families were rejected.</summary>
public static class PlanReport
{
    /// <summary>Rejected families shown; the rest are counted.</summary>
    public const int MostRejections = 12;

    public static IEnumerable<string> Lines(TrainingSpec spec, ClusterShape cluster, LayoutPins pins, PlanRanking ranking, TimeSpan elapsed)
    {
        var m = spec.Model;
        yield return Invariant($"plan for {spec.Name}: {m.Layers} layers, d={m.DModel}, {m.Heads} heads, context {m.Context}, {new ModelShape(m, 1).Parameters:N0} parameters; batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, {spec.Runtime.Precision}; devices {spec.Devices.Min}..{spec.Devices.Max}");
        yield return Invariant($"on {cluster} ({cluster.Devices:N0} devices, {ranking.Device.Name}{(ranking.Device.Calibrated ? ", as its silos measured it" : "")}); the spec pins {pins}");
        yield return Invariant($"weighed {ranking.Considered:N0} layouts, {ranking.Fitting:N0} fit in memory, in {elapsed.TotalSeconds:0.00} s");
        if (ranking.Choice is null)
        {
            yield return "no layout fits these devices";
        }
        else
        {
            yield return "";
            yield return Invariant($"{"#",2}  {"layout",-44} {"tokens/s",14} {"step",10} {"MFU",5} {"devices",8} {"memory/device",14}");
            foreach (var (p, i) in ranking.Best.Select((p, i) => (p, i + 1)))
                yield return Invariant($"{i,2}  {p.Layout,-44} {p.TokensPerSecond,14:N0} {StepTimeEstimate.Format(p.Step.Seconds),10} {(p.Mfu is { } mfu ? mfu.ToString("P0", CultureInfo.InvariantCulture) : "-"),5} {p.Layout.Devices,8:N0} {MemoryEstimate.MiB(p.Memory.DeviceBytes(ranking.Device.HostMemory)),14}");
            var best = ranking.Choice;
            yield return "";
            yield return $"chosen: {best.Layout}";
            yield return "  memory per device: " + string.Join(", ", best.Memory.Terms.Select(t => $"{t.Term} {MemoryEstimate.MiB(t.Bytes)}"));
            yield return "  step: " + best.Step;
        }
        if (ranking.Rejected.Count > 0)
        {
            yield return "";
            yield return "rejected:";
            foreach (var reason in ranking.Rejected.Take(MostRejections)) yield return "  " + reason;
            if (ranking.Rejected.Count > MostRejections) yield return Invariant($"  ... and {ranking.Rejected.Count - MostRejections} more families");
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
