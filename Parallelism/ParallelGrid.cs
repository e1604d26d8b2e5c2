namespace Elastic.Parallelism;

/// <summary>
/// A job's parallel layout as a grid of ranks: dp replicas, each a pipeline of pp stages, each stage spread over
/// tp devices. Ranks are numbered with the tensor axis innermost (<see cref="GridAxis"/>), so a rank is
/// <c>(data * pp + pipeline) * tp + tensor</c>; all index arithmetic on layouts lives here.
/// </summary>
public sealed record ParallelGrid
{
    /// <summary>No layout has more ranks than this (a guard against overflow, far beyond any cluster).</summary>
    public const int MaxRanks = 1 << 20;

    private ParallelGrid(int dp, int pp, int tp) => (Dp, Pp, Tp) = (dp, pp, tp);

    public int Dp { get; }
    public int Pp { get; }
    public int Tp { get; }

    /// <summary>The number of ranks (devices) in the grid.</summary>
    public int Size => Dp * Pp * Tp;

    public static ParallelGrid Single { get; } = new(1, 1, 1);

    /// <summary>A grid of these sizes; every size that is not a positive number is refused at once, named with its value.</summary>
    public static ParallelGrid Of(int dp, int pp = 1, int tp = 1)
    {
        var errors = Validate(dp, pp, tp);
        return errors.Count == 0 ? new ParallelGrid(dp, pp, tp) : throw new ParallelGridException(errors);
    }

    public static IReadOnlyList<string> Validate(int dp, int pp, int tp)
    {
        var errors = new List<string>();
        foreach (var (axis, size) in new[] { (GridAxis.Data, dp), (GridAxis.Pipeline, pp), (GridAxis.Tensor, tp) })
            if (size < 1) errors.Add($"{axis.Name()}: must be at least 1, got {size}");
        if (errors.Count == 0 && (long)dp * pp * tp > MaxRanks)
            errors.Add($"dp x pp x tp: {dp} x {pp} x {tp} = {(long)dp * pp * tp} ranks, more than {MaxRanks}");
        return errors;
    }

    /// <summary>Reads a layout written as <c>dp=2,pp=1,tp=4</c> (axes in any order, missing ones 1), listing every problem with its text.</summary>
    public static ParallelGrid Parse(string text)
    {
        var sizes = new Dictionary<GridAxis, int>();
        var errors = new List<string>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || GridAxes.Parse(pair[0]) is not { } axis)
                errors.Add($"'{part}': expected dp=N, pp=N, tp=N or zero=N");
            else if (!int.TryParse(pair[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size))
                errors.Add($"{pair[0]}: '{pair[1]}' is not a whole number");
            else if (!sizes.TryAdd(axis, size))
                errors.Add($"{pair[0]}: given more than once");
        }
        if (errors.Count == 0)
            errors.AddRange(Validate(sizes.GetValueOrDefault(GridAxis.Data, 1), sizes.GetValueOrDefault(GridAxis.Pipeline, 1), sizes.GetValueOrDefault(GridAxis.Tensor, 1)));
        return errors.Count == 0
            ? new ParallelGrid(sizes.GetValueOrDefault(GridAxis.Data, 1), sizes.GetValueOrDefault(GridAxis.Pipeline, 1), sizes.GetValueOrDefault(GridAxis.Tensor, 1))
            : throw new ParallelGridException(errors.Select(e => $"plan '{text}': {e}").ToList());
    }

    public int SizeOf(GridAxis axis) => axis switch
    {
        GridAxis.Data => Dp,
        GridAxis.Pipeline => Pp,
        GridAxis.Tensor => Tp,
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "not a grid axis"),
    };

    public int RankOf(GridCoordinates at)
    {
        foreach (var axis in GridAxes.All)
            if (at[axis] < 0 || at[axis] >= SizeOf(axis))
                throw new ArgumentOutOfRangeException(nameof(at), $"{axis.Name()} coordinate {at[axis]} is outside 0..{SizeOf(axis) - 1} of {this}");
        return (at.Data * Pp + at.Pipeline) * Tp + at.Tensor;
    }

    public GridCoordinates CoordinatesOf(int rank) =>
        rank >= 0 && rank < Size
            ? new GridCoordinates(rank / (Pp * Tp), rank / Tp % Pp, rank % Tp)
            : throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside 0..{Size - 1} of {this}");

    /// <summary>
    /// The ranks that share every coordinate of <paramref name="rank"/> but the one on <paramref name="axis"/>, in order of
    /// that coordinate: the group <paramref name="rank"/> communicates with along the axis (its index in it is its coordinate).
    /// </summary>
    public IReadOnlyList<int> GroupOf(GridAxis axis, int rank)
    {
        var at = CoordinatesOf(rank);
        return Enumerable.Range(0, SizeOf(axis)).Select(i => RankOf(at.With(axis, i))).ToArray();
    }

    /// <summary>Every group along <paramref name="axis"/>, each in order of its coordinate, the groups in order of their first rank.</summary>
    public IReadOnlyList<IReadOnlyList<int>> GroupsAlong(GridAxis axis) =>
        Enumerable.Range(0, Size).Where(r => CoordinatesOf(r)[axis] == 0).Select(r => GroupOf(axis, r)).ToArray();

    /// <summary>
    /// A name for the group of <paramref name="rank"/> along <paramref name="axis"/> that every member computes alike and no
    /// other group of the grid shares: the axis and the other coordinates, e.g. <c>dp[pp1,tp0]</c>.
    /// </summary>
    public string GroupName(GridAxis axis, int rank)
    {
        var at = CoordinatesOf(rank);
        return $"{axis.Name()}[{string.Join(",", GridAxes.All.Where(a => a != axis).Select(a => $"{a.Name()}{at[a]}"))}]";
    }

    public override string ToString() => $"dp={Dp} pp={Pp} tp={Tp}";
}
