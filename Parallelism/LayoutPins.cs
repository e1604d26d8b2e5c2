using System.Globalization;

namespace Elastic.Parallelism;

/// <summary>
/// The dimensions of a layout a job's spec fixes; null ones are the planner's to choose. The data-parallel width is never
/// pinned (the service follows capacity with it). <see cref="Interleaved"/> true pins the interleaved schedule (v may still be
/// chosen), false pins 1F1B (v = 1).
/// </summary>
public sealed record LayoutPins(int? Pp = null, int? Tp = null, int? Ep = null, int? Zero = null, int? VirtualStages = null, string? Recompute = null, bool? Interleaved = null)
{
    public static LayoutPins None { get; } = new();

    /// <summary>Whether <paramref name="layout"/> keeps every pinned dimension (ep: the spec pins the most replicas experts spread over).</summary>
    public bool Admit(Layout layout) =>
        (Pp is null || layout.Pp == Pp) && (Tp is null || layout.Tp == Tp) && (Ep is null || layout.Ep <= Ep)
        && (Zero is null || layout.Zero == Zero) && (VirtualStages is null || layout.VirtualStages == VirtualStages)
        && (Recompute is null || layout.Recompute == Recompute) && (Interleaved is null || (layout.Schedule == Pipeline.PipelineSchedule.Interleaved) == Interleaved);

    /// <summary>The pinned dimensions in the <c>--plan</c> notation, or "nothing".</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        void Add(string name, object? value)
        {
            if (value is not null) parts.Add(string.Create(CultureInfo.InvariantCulture, $"{name}={value}"));
        }
        Add("pp", Pp);
        Add("tp", Tp);
        Add("ep", Ep);
        Add("v", VirtualStages);
        Add("zero", Zero);
        Add("recompute", Recompute);
        if (Interleaved is { } interleaved) Add("schedule", interleaved ? Pipeline.PipelineSchedule.Interleaved : Pipeline.PipelineSchedule.OneFOneB);
        return parts.Count == 0 ? "nothing" : string.Join(",", parts);
    }
}
