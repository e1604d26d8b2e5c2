namespace Elastic.Parallelism;

/// <summary>
/// The dimensions of the parallel grid, outermost first (Megatron's order): tensor parallelism is innermost, so
/// the ranks of one tensor-parallel group are consecutive and can be placed on one silo's devices; data
/// parallelism is outermost, so a replica is a consecutive block of ranks.
/// </summary>
public enum GridAxis
{
    Data,
    Pipeline,
    Tensor,
}

public static class GridAxes
{
    /// <summary>Every axis, outermost first.</summary>
    public static readonly IReadOnlyList<GridAxis> All = [GridAxis.Data, GridAxis.Pipeline, GridAxis.Tensor];

    /// <summary>The short name used in plans, groups and messages: dp, pp, tp.</summary>
    public static string Name(this GridAxis axis) => axis switch
    {
        GridAxis.Data => "dp",
        GridAxis.Pipeline => "pp",
        GridAxis.Tensor => "tp",
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "not a grid axis"),
    };

    public static GridAxis? Parse(string name) => All.Cast<GridAxis?>().FirstOrDefault(a => a!.Value.Name() == name);
}
