using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Training.Parallel;

/// <summary>
/// A unit's communicators, one per grid axis it shares with other ranks (an axis of size 1 has none), joined once
/// per generation when the unit is prepared and handed to the layers that use them. A rank's index in each
/// communicator is its coordinate on that axis. With experts spread (ep > 1) it also has the expert group (index: its
/// expert rank) and the expert-data group (index: its block).
/// </summary>
public sealed class ProcessGroups : IDisposable
{
    private readonly Dictionary<GridAxis, Communicator> _groups;

    private ProcessGroups(ParallelGrid grid, int rank, Dictionary<GridAxis, Communicator> groups, Communicator? experts = null, Communicator? expertData = null) =>
        (Grid, Rank, _groups, Experts, _expertData) = (grid, rank, groups, experts, expertData);

    private readonly Communicator? _expertData;

    /// <summary>The replicas this rank spreads MoE experts with (null: ep = 1).</summary>
    public Communicator? Experts { get; }

    /// <summary>The replicas that hold the same experts as this rank, over which expert gradients are reduced (the data-parallel group when ep = 1; null when alone).</summary>
    public Communicator? ExpertData => Grid.Ep == 1 ? Along(GridAxis.Data) : _expertData;

    public ParallelGrid Grid { get; }
    public int Rank { get; }
    public GridCoordinates Coordinates => Grid.CoordinatesOf(Rank);

    /// <summary>A lone rank: no communicators at all.</summary>
    public static ProcessGroups Alone { get; } = new(ParallelGrid.Single, 0, []);

    /// <summary>The communicator along <paramref name="axis"/>, or null when this rank is alone on it.</summary>
    public Communicator? Along(GridAxis axis) => _groups.GetValueOrDefault(axis);

    /// <summary>What each group's tensors between processes go over ("NCCL 2.27.3", or frames and why), by group name.</summary>
    public IReadOnlyDictionary<string, string> Transports { get; private init; } = new Dictionary<string, string>();

    /// <summary>
    /// Joins every group of <paramref name="rank"/> in the grid's fixed order (<see cref="ParallelGrid.GroupsOf"/>: every rank
    /// joins in the same order, so no two groups wait on each other), named <c>{prefix}/{group name}</c>, each with the device
    /// transport <paramref name="device"/> offers it. <paramref name="endpoints"/> is by rank; <paramref name="secret"/> is the
    /// generation's, which every rank was given with its assignment.
    /// </summary>
    public static async Task<ProcessGroups> JoinAsync(DataPlane plane, string prefix, ParallelGrid grid, int rank, IReadOnlyList<string> endpoints,
        GroupSecret secret, TimeSpan timeout, TimeSpan? joinTimeout = null, DeviceTransportJoin? device = null)
    {
        if (endpoints.Count != grid.Size)
            throw new ArgumentException($"{grid} has {grid.Size} ranks but {endpoints.Count} endpoints were given", nameof(endpoints));
        var joined = new List<(GridGroup Group, Communicator Communicator)>();
        var transports = new Dictionary<string, string>();
        try
        {
            foreach (var group in grid.GroupsOf(rank))
            {
                var communicator = await plane.JoinAsync($"{prefix}/{group.Name}", group.IndexOf(rank), group.Ranks.Select(r => endpoints[r]).ToArray(), secret, timeout, joinTimeout);
                joined.Add((group, communicator));
                transports[group.Name] = await (device ?? DeviceTransportJoin.None).TryAsync(group.Name, communicator);
            }
        }
        catch
        {
            foreach (var (_, communicator) in joined) communicator.Dispose();
            throw;
        }
        Communicator? Of(GridGroupRole role) => joined.FirstOrDefault(j => j.Group.Role == role).Communicator;
        var axes = joined.Where(j => j.Group.Axis is not null).ToDictionary(j => j.Group.Axis!.Value, j => j.Communicator);
        return new ProcessGroups(grid, rank, axes, Of(GridGroupRole.Experts), Of(GridGroupRole.ExpertData)) { Transports = transports };
    }

    public void Dispose()
    {
        foreach (var group in _groups.Values) group.Dispose();
        Experts?.Dispose();
        _expertData?.Dispose();
    }
}
