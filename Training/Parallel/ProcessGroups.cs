using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Training.Parallel;

/// <summary>
/// A unit's communicators, one per grid axis it shares with other ranks (an axis of size 1 has none), joined once
/// per generation when the unit is prepared and handed to the layers that use them. A rank's index in each
/// communicator is its coordinate on that axis.
/// </summary>
public sealed class ProcessGroups : IDisposable
{
    private readonly Dictionary<GridAxis, Communicator> _groups;

    private ProcessGroups(ParallelGrid grid, int rank, Dictionary<GridAxis, Communicator> groups) =>
        (Grid, Rank, _groups) = (grid, rank, groups);

    public ParallelGrid Grid { get; }
    public int Rank { get; }
    public GridCoordinates Coordinates => Grid.CoordinatesOf(Rank);

    /// <summary>A lone rank: no communicators at all.</summary>
    public static ProcessGroups Alone { get; } = new(ParallelGrid.Single, 0, []);

    /// <summary>The communicator along <paramref name="axis"/>, or null when this rank is alone on it.</summary>
    public Communicator? Along(GridAxis axis) => _groups.GetValueOrDefault(axis);

    /// <summary>
    /// Joins every group of <paramref name="rank"/>, axis by axis in the grid's fixed order (every rank joins in the same order,
    /// so no two groups wait on each other), named <c>{prefix}/{group name}</c>. <paramref name="endpoints"/> is by rank.
    /// </summary>
    public static async Task<ProcessGroups> JoinAsync(DataPlane plane, string prefix, ParallelGrid grid, int rank, IReadOnlyList<string> endpoints,
        TimeSpan timeout, TimeSpan? joinTimeout = null)
    {
        if (endpoints.Count != grid.Size)
            throw new ArgumentException($"{grid} has {grid.Size} ranks but {endpoints.Count} endpoints were given", nameof(endpoints));
        var groups = new Dictionary<GridAxis, Communicator>();
        try
        {
            foreach (var axis in GridAxes.All.Where(a => grid.SizeOf(a) > 1))
                groups[axis] = await plane.JoinAsync($"{prefix}/{grid.GroupName(axis, rank)}", grid.CoordinatesOf(rank)[axis],
                    grid.GroupOf(axis, rank).Select(r => endpoints[r]).ToArray(), timeout, joinTimeout);
            return new ProcessGroups(grid, rank, groups);
        }
        catch
        {
            foreach (var joined in groups.Values) joined.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var group in _groups.Values) group.Dispose();
    }
}
