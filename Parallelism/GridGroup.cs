namespace Elastic.Parallelism;

/// <summary>What a group of ranks communicates for: one grid axis, or the experts spread over replicas (ep > 1) and their data-parallel peers.</summary>
public enum GridGroupRole
{
    Data,
    Pipeline,
    Tensor,
    Experts,
    ExpertData,
}

/// <summary>
/// A group of ranks that communicate: its name, which every member computes alike and no other group of the grid shares, its
/// members in order of their index in it, and what it is for.
/// </summary>
public sealed record GridGroup(string Name, IReadOnlyList<int> Ranks, GridGroupRole Role)
{
    /// <summary>The grid axis the group runs along; null for the expert groups.</summary>
    public GridAxis? Axis => Role switch
    {
        GridGroupRole.Data => GridAxis.Data,
        GridGroupRole.Pipeline => GridAxis.Pipeline,
        GridGroupRole.Tensor => GridAxis.Tensor,
        _ => null,
    };

    /// <summary><paramref name="rank"/>'s index in the group (its coordinate on the group's axis).</summary>
    public int IndexOf(int rank)
    {
        for (var i = 0; i < Ranks.Count; i++)
            if (Ranks[i] == rank) return i;
        throw new ArgumentOutOfRangeException(nameof(rank), rank, $"not a member of {Name}");
    }
}
