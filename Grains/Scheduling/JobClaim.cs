using Elastic.GrainInterfaces;

namespace Elastic.Grains.Scheduling;

/// <summary>
/// A job as the scheduler sees it: where it stands, the device counts it accepts (widest first) and how many devices it
/// holds (0: it waits in the queue).
/// </summary>
public sealed record JobClaim(string JobId, JobStanding Standing, IReadOnlyList<int> Widths, int Held)
{
    public bool Waiting => Held == 0;

    /// <summary>The fewest devices it runs on (its narrowest width, at least devices.min): fair share never takes it lower.</summary>
    public int Floor => Math.Min(Held == 0 ? int.MaxValue : Held, Widths.DefaultIfEmpty(Held).Min());

    /// <summary>The widest width it accepts within <paramref name="devices"/>; 0 when none fits.</summary>
    public int WidestWithin(int devices) => Widths.Where(w => w <= devices).DefaultIfEmpty(0).Max();

    public override string ToString() => $"job {JobId} (priority {Standing.Priority})";
}
