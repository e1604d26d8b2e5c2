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
    public static readonly Histogram<double> Mfu = Meter.CreateHistogram<double>("elastic.mfu", "1", "Model FLOPs utilization of a committed step, where the devices' peak is known");
    public static readonly Counter<long> Steps = Meter.CreateCounter<long>("elastic.steps", "{step}", "Committed optimizer steps");
    public static readonly Histogram<double> ReplanPause = Meter.CreateHistogram<double>("elastic.replan.pause", "s", "Time a re-plan held training, from the decision to the new plan's first step");
    public static readonly Histogram<double> CheckpointDuration = Meter.CreateHistogram<double>("elastic.checkpoint.duration", "s", "From a checkpoint's snapshot to its manifest");
    public static readonly Counter<long> CheckpointBytes = Meter.CreateCounter<long>("elastic.checkpoint.bytes", "By", "Bytes of committed checkpoints' chunks");
    public static readonly Counter<long> Checkpoints = Meter.CreateCounter<long>("elastic.checkpoints", "{checkpoint}", "Committed checkpoints");

    public static KeyValuePair<string, object?> Job(string jobId) => new("job", jobId);

    /// <summary>
    /// The scheduler's gauges: queued jobs, devices held and devices schedulable, as the capacity grain last saw them. Only the
    /// silo hosting that grain reports them (it clears them when the grain leaves), so a scrape of every silo counts each once.
    /// </summary>
    public static class Scheduler
    {
        // A reference swapped whole: a scrape never sees half of one update.
        private static Counts? _last;

        static Scheduler()
        {
            Meter.CreateObservableGauge("elastic.queue.length", () => Observe(s => s.Queued), "{job}", "Jobs waiting for devices");
            Meter.CreateObservableGauge("elastic.devices.in_use", () => Observe(s => s.InUse), "{device}", "Devices held by jobs");
            Meter.CreateObservableGauge("elastic.devices", () => Observe(s => s.Devices), "{device}", "Devices of active silos that are not draining");
        }

        public static void Publish(int queued, int inUse, int devices) => _last = new Counts(queued, inUse, devices);

        public static void Clear() => _last = null;

        private static IEnumerable<Measurement<int>> Observe(Func<Counts, int> value) =>
            _last is { } last ? [new Measurement<int>(value(last))] : [];

        private sealed record Counts(int Queued, int InUse, int Devices);
    }
}
