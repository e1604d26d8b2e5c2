namespace Elastic.GrainInterfaces;

/// <summary>
/// What a re-plan did, as fields beside its event's text: why, from and to which layout (the <c>--plan</c> notation), how long
/// training paused, the committed steps lost, the bytes of state moved, and the step time predicted for the new layout next to
/// the one measured on the old.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.ReplanFields")]
public sealed record ReplanFields(
    [property: Id(0)] string Cause,
    [property: Id(1)] string From,
    [property: Id(2)] string To,
    [property: Id(3)] double PauseSeconds,
    [property: Id(4)] long StepsLost,
    [property: Id(5)] long BytesMoved,
    [property: Id(6)] double? PredictedStepSeconds = null,
    [property: Id(7)] double? MeasuredStepSeconds = null);
