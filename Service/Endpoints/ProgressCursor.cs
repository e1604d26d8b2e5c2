using System.Globalization;
using Elastic.GrainInterfaces;

namespace Elastic.Service.Endpoints;

/// <summary>
/// How far a watcher has read: the last step and event it was sent. It is each server-sent event's id, so a browser that
/// reconnects (sending Last-Event-ID) picks up where it stopped instead of from the beginning.
/// </summary>
public sealed record ProgressCursor(long Step, long Event)
{
    public static ProgressCursor Start { get; } = new(0, 0);

    public ProgressCursor After(JobProgress progress) => new(
        progress.Steps.Count > 0 ? progress.Steps[^1].Step : Step,
        progress.Events.Count > 0 ? progress.Events[^1].Index : Event);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Step}.{Event}");

    public static ProgressCursor? Parse(string? text)
    {
        var parts = text?.Split('.');
        return parts is [var step, var @event]
            && long.TryParse(step, NumberStyles.None, CultureInfo.InvariantCulture, out var s)
            && long.TryParse(@event, NumberStyles.None, CultureInfo.InvariantCulture, out var e)
                ? new ProgressCursor(s, e)
                : null;
    }
}
