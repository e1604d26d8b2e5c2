namespace Elastic.Parallelism;

/// <summary>Where a rank sits in the grid: its data-parallel replica, pipeline stage and tensor-parallel rank.</summary>
public readonly record struct GridCoordinates(int Data, int Pipeline, int Tensor)
{
    public int this[GridAxis axis] => axis switch
    {
        GridAxis.Data => Data,
        GridAxis.Pipeline => Pipeline,
        GridAxis.Tensor => Tensor,
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "not a grid axis"),
    };

    /// <summary>The same coordinates with one axis moved.</summary>
    public GridCoordinates With(GridAxis axis, int value) => axis switch
    {
        GridAxis.Data => this with { Data = value },
        GridAxis.Pipeline => this with { Pipeline = value },
        GridAxis.Tensor => this with { Tensor = value },
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "not a grid axis"),
    };

    public override string ToString() => $"(dp {Data}, pp {Pipeline}, tp {Tensor})";
}
