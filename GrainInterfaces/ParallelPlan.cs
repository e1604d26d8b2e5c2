namespace Elastic.GrainInterfaces;

/// <summary>
/// The layout of one generation of a job: dp replicas, each a pipeline of pp shard groups spread over tp
/// devices. Devices are listed replica-major, then stage, then tensor rank. Every re-plan gets a new,
/// larger generation; work of an older generation is discarded.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.ParallelPlan")]
public sealed record ParallelPlan(
    [property: Id(0)] int Generation,
    [property: Id(1)] int Dp,
    [property: Id(2)] int Pp,
    [property: Id(3)] int Tp,
    [property: Id(4)] IReadOnlyList<DeviceSlot> Devices)
{
    public int DeviceCount => Dp * Pp * Tp;

    public DeviceSlot DeviceOf(int replica, int stage = 0, int tensorRank = 0) => Devices[(replica * Pp + stage) * Tp + tensorRank];

    public override string ToString() =>
        $"generation {Generation}: dp={Dp} pp={Pp} tp={Tp} on {Devices.Select(d => d.Silo).Distinct().Count()} silo(s)";
}
