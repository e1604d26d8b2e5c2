using Elastic.Parallelism;

namespace Elastic.GrainInterfaces;

/// <summary>
/// The layout of one generation of a job: dp replicas, each a pipeline of pp shard groups spread over tp
/// devices. Devices are listed by rank of the <see cref="Grid"/> (replica-major, then stage, then tensor rank). Every re-plan gets a new,
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
    public ParallelGrid Grid => ParallelGrid.Of(Dp, Pp, Tp);

    public int DeviceCount => Grid.Size;

    public DeviceSlot DeviceOf(int replica, int stage = 0, int tensorRank = 0) => Devices[Grid.RankOf(new GridCoordinates(replica, stage, tensorRank))];

    public override string ToString() =>
        $"generation {Generation}: dp={Dp} pp={Pp} tp={Tp} on {Devices.Select(d => d.Silo).Distinct().Count()} silo(s)";
}
