using Elastic.Parallelism;

namespace Elastic.GrainInterfaces;

/// <summary>
/// The layout of one generation of a job: dp replicas, each a pipeline of pp shard groups spread over tp
/// devices, with the optimizer state sharded over the replicas at ZeRO stage <paramref name="Zero"/> and MoE experts spread over
/// groups of <paramref name="Ep"/> replicas. Devices are listed by rank of the grid (<see cref="ToGrid"/>: replica-major, then stage, then tensor rank). Every re-plan gets a new,
/// larger generation; work of an older generation is discarded.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.ParallelPlan")]
public sealed record ParallelPlan(
    [property: Id(0)] int Generation,
    [property: Id(1)] int Dp,
    [property: Id(2)] int Pp,
    [property: Id(3)] int Tp,
    [property: Id(4)] IReadOnlyList<DeviceSlot> Devices,
    [property: Id(5)] int Zero = 0,
    [property: Id(6)] int Ep = 1,
    [property: Id(7)] int VirtualStages = 1,
    [property: Id(8)] string Recompute = Recomputation.None,
    [property: Id(9)] bool Interleaved = false)
{
    /// <summary>A plan of <paramref name="layout"/> on <paramref name="devices"/> (in rank order) in generation <paramref name="generation"/>.</summary>
    public static ParallelPlan Of(int generation, Layout layout, IReadOnlyList<DeviceSlot> devices) =>
        new(generation, layout.Dp, layout.Pp, layout.Tp, devices, layout.Zero, layout.Ep, layout.VirtualStages, layout.Recompute, layout.Interleaved);

    /// <summary>The plan's layout. A method, as <see cref="ToGrid"/>.</summary>
    public Layout ToLayout() => new(Dp, Pp, Tp, Ep, Zero, VirtualStages, Recompute, Interleaved);

    /// <summary>The plan's grid. A method, not a property: records that reach JSON grain storage must hold only what they are built from.</summary>
    public ParallelGrid ToGrid() => ParallelGrid.Of(Dp, Pp, Tp, Ep);

    public int DeviceCount => Dp * Pp * Tp;

    /// <summary>Each replica's first device (where its replica grain lives), by replica.</summary>
    public IReadOnlyList<DeviceSlot> ReplicaDevices() => Enumerable.Range(0, Dp).Select(r => DeviceOf(r)).ToList();

    /// <summary>The devices of one replica (its pipeline stages' tensor-parallel groups), in rank order: stage-major, tensor rank minor.</summary>
    public IReadOnlyList<DeviceSlot> ReplicaGroupOf(int replica) => Devices.Skip(replica * Pp * Tp).Take(Pp * Tp).ToList();

    public DeviceSlot DeviceOf(int replica, int stage = 0, int tensorRank = 0) => Devices[ToGrid().RankOf(new GridCoordinates(replica, stage, tensorRank))];

    /// <summary>
    /// The grid's groups whose ranks are on CUDA devices of more than one process (data-plane endpoint): those whose tensors a
    /// device transport (NCCL) can carry between processes. None on CPU devices, or when a group's ranks share a process.
    /// </summary>
    public IReadOnlyList<GridGroup> DeviceGroupsAcrossProcesses() =>
        Devices.Any(d => !d.Model.StartsWith("cuda", StringComparison.Ordinal)) ? []
            : [.. ToGrid().Groups().Where(g => g.Ranks.Select(r => Devices[r].DataPlane).Distinct().Count() > 1)];

    public override string ToString() => $"generation {Generation}: {ToLayout()} on {Devices.Select(d => d.Silo).Distinct().Count()} silo(s)";

    /// <summary>Whether each replica holds only its part of the optimizer state (ZeRO over more than one replica).</summary>
    public bool Partitioned => Zero > 0 && Dp > 1;

    /// <summary>The expert rank of <paramref name="replica"/>: which of each MoE layer's expert parts it hosts.</summary>
    public int ExpertPartOf(int replica) => replica % Ep;
}
