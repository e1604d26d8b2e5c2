using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Elastic.Grains.Telemetry;

/// <summary>
/// The coordinators' meters and traces, under the name "Elastic": plain System.Diagnostics instruments that any
/// OpenTelemetry pipeline reads (the API host's Prometheus endpoint, see Service/ServiceDefaults). Tagged by job.
/// </summary>
public static class ElasticTelemetry
{
    public const string Name = "Elastic";

    private static readonly Meter Meter = new(Name);

    /// <summary>Spans of the service's long operations: submit, re-plan, checkpoint.</summary>
    public static readonly ActivitySource Traces = new(Name);

    public static readonly Histogram<double> StepDuration = Meter.CreateHistogram<double>("elastic.step.duration", "s", "Wall time of a committed optimizer step");
    public static readonly Counter<long> Tokens = Meter.CreateCounter<long>("elastic.tokens", "{token}", "Tokens trained in committed steps");
    public static readonly Counter<long> Steps = Meter.CreateCounter<long>("elastic.steps", "{step}", "Committed optimizer steps");
    public static readonly Histogram<double> ReplanPause = Meter.CreateHistogram<double>("elastic.replan.pause", "s", "Time a re-plan held training, from the decision to the new plan's first step");
    public static readonly Histogram<double> CheckpointDuration = Meter.CreateHistogram<double>("elastic.checkpoint.duration", "s", "From a checkpoint's snapshot to its manifest");
    public static readonly Counter<long> Checkpoints = Meter.CreateCounter<long>("elastic.checkpoints", "{checkpoint}", "Committed checkpoints");

    public static KeyValuePair<string, object?> Job(string jobId) => new("job", jobId);
}
