namespace Elastic.Parallelism;

/// <summary>
/// A job's parallel layout as a grid of ranks: dp replicas, each a pipeline of pp stages, each stage spread over
/// tp devices. Ranks are numbered with the tensor axis innermost (<see cref="GridAxis"/>), so a rank is
/// <c>(data * pp + pipeline) * tp + tensor</c>; all index arithmetic on layouts lives here. Expert parallelism (ep) is
/// not an axis of its own: it splits the data axis into expert groups of ep consecutive replicas (which spread each MoE
/// layer's experts over them) and expert-data groups of the replicas that hold the same experts (every ep-th).
/// </summary>
public sealed record ParallelGrid
{
    /// <summary>No layout has more ranks than this (a guard against overflow, far beyond any cluster).</summary>
    public const int MaxRanks = 1 << 20;

    private ParallelGrid(int dp, int pp, int tp, int ep) => (Dp, Pp, Tp, Ep) = (dp, pp, tp, ep);

    public int Dp { get; }
    public int Pp { get; }
    public int Tp { get; }

    /// <summary>ep: the replicas each MoE layer's experts are spread over; divides <see cref="Dp"/>.</summary>
    public int Ep { get; }

    /// <summary>The number of ranks (devices) in the grid.</summary>
    public int Size => Dp * Pp * Tp;

    public static ParallelGrid Single { get; } = new(1, 1, 1, 1);

    /// <summary>A grid of these sizes; every size that is not a positive number (or an ep not dividing dp) is refused at once, named with its value.</summary>
    public static ParallelGrid Of(int dp, int pp = 1, int tp = 1, int ep = 1)
    {
        var errors = Validate(dp, pp, tp, ep);
        return errors.Count == 0 ? new ParallelGrid(dp, pp, tp, ep) : throw new ParallelGridException(errors);
    }

    /// <summary>The same grid with experts spread over <paramref name="ep"/> replicas.</summary>
    public ParallelGrid WithExperts(int ep) => Of(Dp, Pp, Tp, ep);

    public static IReadOnlyList<string> Validate(int dp, int pp, int tp, int ep = 1)
    {
        var errors = new List<string>();
        foreach (var (axis, size) in new[] { (GridAxis.Data, dp), (GridAxis.Pipeline, pp), (GridAxis.Tensor, tp) })
            if (size < 1) errors.Add($"{axis.Name()}: must be at least 1, got {size}");
        if (ep < 1) errors.Add($"ep: must be at least 1, got {ep}");
        else if (dp >= 1 && dp % ep != 0) errors.Add($"ep: {ep} does not divide dp {dp} (expert groups are made of replicas)");
        if (errors.Count == 0 && (long)dp * pp * tp > MaxRanks)
            errors.Add($"dp x pp x tp: {dp} x {pp} x {tp} = {(long)dp * pp * tp} ranks, more than {MaxRanks}");
        return errors;
    }

    /// <summary>Reads a layout written as <c>dp=2,pp=1,tp=4</c> (axes in any order, missing ones 1), listing every problem with its text.</summary>
    public static ParallelGrid Parse(string text)
    {
        var sizes = new Dictionary<string, int>();
        var errors = new List<string>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || (GridAxes.Parse(pair[0]) is null && pair[0] != ExpertName))
                errors.Add($"'{part}': expected dp=N, pp=N, tp=N, ep=N or zero=N");
            else if (!int.TryParse(pair[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size))
                errors.Add($"{pair[0]}: '{pair[1]}' is not a whole number");
            else if (!sizes.TryAdd(pair[0], size))
                errors.Add($"{pair[0]}: given more than once");
        }
        int Size(string name) => sizes.GetValueOrDefault(name, 1);
        if (errors.Count == 0) errors.AddRange(Validate(Size("dp"), Size("pp"), Size("tp"), Size(ExpertName)));
        return errors.Count == 0
            ? new ParallelGrid(Size("dp"), Size("pp"), Size("tp"), Size(ExpertName))
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

    private const string ExpertName = "ep";

    /// <summary>
    /// The expert group of <paramref name="rank"/>: the ep consecutive replicas of its block at its stage and tensor rank, in
    /// replica order (its index in it is its expert rank, replica mod ep). Each holds E / ep of every MoE layer's experts.
    /// </summary>
    public IReadOnlyList<int> ExpertGroupOf(int rank)
    {
        var at = CoordinatesOf(rank);
        var first = at.Data / Ep * Ep;
        return Enumerable.Range(first, Ep).Select(d => RankOf(at with { Data = d })).ToArray();
    }

    /// <summary>
    /// The expert-data group of <paramref name="rank"/>: the replicas holding the same experts (every ep-th), in replica order
    /// (its index in it is replica / ep). Expert gradients are reduced over it.
    /// </summary>
    public IReadOnlyList<int> ExpertDataGroupOf(int rank)
    {
        var at = CoordinatesOf(rank);
        return Enumerable.Range(0, Dp / Ep).Select(j => RankOf(at with { Data = j * Ep + at.Data % Ep })).ToArray();
    }

    /// <summary>Names of the expert and expert-data groups of <paramref name="rank"/>, unique in the grid.</summary>
    public (string Expert, string ExpertData) ExpertGroupNames(int rank)
    {
        var at = CoordinatesOf(rank);
        return ($"ep[block{at.Data / Ep},pp{at.Pipeline},tp{at.Tensor}]", $"edp[ep{at.Data % Ep},pp{at.Pipeline},tp{at.Tensor}]");
    }

    /// <summary>
    /// The groups <paramref name="rank"/> belongs to, in the order every member joins them (so no two groups wait on each
    /// other): each axis it shares with other ranks, outermost first, then with experts spread its expert group and, when
    /// dp > ep, its expert-data group.
    /// </summary>
    public IReadOnlyList<GridGroup> GroupsOf(int rank)
    {
        var groups = GridAxes.All.Where(a => SizeOf(a) > 1).Select(a => new GridGroup(GroupName(a, rank), GroupOf(a, rank), Role(a))).ToList();
        if (Ep == 1) return groups;
        var (expert, expertData) = ExpertGroupNames(rank);
        groups.Add(new GridGroup(expert, ExpertGroupOf(rank), GridGroupRole.Experts));
        if (Dp > Ep) groups.Add(new GridGroup(expertData, ExpertDataGroupOf(rank), GridGroupRole.ExpertData));
        return groups;
    }

    /// <summary>Every group of the grid once, in the order of <see cref="GroupsOf"/> over the ranks.</summary>
    public IReadOnlyList<GridGroup> Groups() =>
        [.. Enumerable.Range(0, Size).SelectMany(GroupsOf).DistinctBy(g => g.Name)];

    private static GridGroupRole Role(GridAxis axis) => axis switch
    {
        GridAxis.Data => GridGroupRole.Data,
        GridAxis.Pipeline => GridGroupRole.Pipeline,
        _ => GridGroupRole.Tensor,
    };

    public override string ToString() => Ep > 1 ? $"dp={Dp} pp={Pp} tp={Tp} ep={Ep}" : $"dp={Dp} pp={Pp} tp={Tp}";
}
