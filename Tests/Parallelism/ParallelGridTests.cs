using Elastic.Parallelism;

namespace Elastic.Tests.Parallelism;

public sealed class ParallelGridTests
{
    public static TheoryData<int, int, int> Grids => new() { { 1, 1, 1 }, { 4, 1, 1 }, { 2, 1, 2 }, { 1, 4, 1 }, { 2, 3, 4 }, { 3, 2, 8 } };

    [Theory, MemberData(nameof(Grids))]
    public void Every_rank_has_one_place_and_the_tensor_axis_is_innermost(int dp, int pp, int tp)
    {
        var grid = ParallelGrid.Of(dp, pp, tp);
        var places = Enumerable.Range(0, grid.Size).Select(grid.CoordinatesOf).ToList();

        Assert.Equal(dp * pp * tp, places.Distinct().Count());
        Assert.All(Enumerable.Range(0, grid.Size), r => Assert.Equal(r, grid.RankOf(places[r])));
        // Consecutive ranks walk tp first, then pp, then dp: a tensor group is a block of tp neighbours.
        Assert.Equal(places.OrderBy(p => p.Data).ThenBy(p => p.Pipeline).ThenBy(p => p.Tensor), places);
        Assert.All(grid.GroupsAlong(GridAxis.Tensor), g => Assert.Equal(Enumerable.Range(g[0], tp), g));
    }

    [Theory, MemberData(nameof(Grids))]
    public void The_groups_of_an_axis_split_the_ranks_and_each_rank_sits_at_its_coordinate(int dp, int pp, int tp)
    {
        var grid = ParallelGrid.Of(dp, pp, tp);
        foreach (var axis in GridAxes.All)
        {
            var groups = grid.GroupsAlong(axis);
            Assert.Equal(grid.Size / grid.SizeOf(axis), groups.Count);
            Assert.Equal(Enumerable.Range(0, grid.Size), groups.SelectMany(g => g).Order());
            foreach (var group in groups)
            {
                Assert.Equal(grid.SizeOf(axis), group.Count);
                Assert.All(group.Select((rank, index) => (rank, index)), m =>
                {
                    Assert.Equal(m.index, grid.CoordinatesOf(m.rank)[axis]);
                    Assert.Equal(group, grid.GroupOf(axis, m.rank));
                    Assert.Equal(grid.GroupName(axis, group[0]), grid.GroupName(axis, m.rank));
                });
                // Members differ on this axis only.
                Assert.Single(group.Select(r => grid.CoordinatesOf(r).With(axis, 0)).Distinct());
            }
            Assert.Equal(groups.Count, groups.Select(g => grid.GroupName(axis, g[0])).Distinct().Count());
        }
    }

    [Fact]
    public void Group_names_say_the_axis_and_the_coordinates_they_share()
    {
        var grid = ParallelGrid.Of(2, 3, 4);
        var rank = grid.RankOf(new GridCoordinates(1, 2, 3));

        Assert.Equal(23, rank);
        Assert.Equal("dp[pp2,tp3]", grid.GroupName(GridAxis.Data, rank));
        Assert.Equal("tp[dp1,pp2]", grid.GroupName(GridAxis.Tensor, rank));
        Assert.Equal([11, 23], grid.GroupOf(GridAxis.Data, rank));
        Assert.Equal([15, 19, 23], grid.GroupOf(GridAxis.Pipeline, rank));
    }

    [Fact]
    public void Sizes_that_are_not_positive_are_all_named_with_their_values()
    {
        var error = Assert.Throws<ParallelGridException>(() => ParallelGrid.Of(0, -2, 1));

        Assert.Equal(["dp: must be at least 1, got 0", "pp: must be at least 1, got -2"], error.Errors);
        Assert.Contains("more than", Assert.Throws<ParallelGridException>(() => ParallelGrid.Of(1 << 12, 1 << 6, 1 << 4)).Message);
    }

    [Fact]
    public void Coordinates_and_ranks_outside_the_grid_are_refused_with_the_bounds()
    {
        var grid = ParallelGrid.Of(2, 1, 2);

        Assert.Contains("rank 4 is outside 0..3 of dp=2 pp=1 tp=2", Assert.Throws<ArgumentOutOfRangeException>(() => grid.CoordinatesOf(4)).Message);
        Assert.Contains("tp coordinate 2 is outside 0..1", Assert.Throws<ArgumentOutOfRangeException>(() => grid.RankOf(new GridCoordinates(0, 0, 2))).Message);
    }

    [Theory]
    [InlineData("dp=2,tp=4", 2, 1, 4)]
    [InlineData(" tp = 2 , dp=1 , pp=2", 1, 2, 2)]
    [InlineData("dp=8", 8, 1, 1)]
    public void A_written_plan_is_read_in_any_order_with_missing_axes_one(string text, int dp, int pp, int tp) =>
        Assert.Equal(ParallelGrid.Of(dp, pp, tp), ParallelGrid.Parse(text));

    [Fact]
    public void Expert_groups_split_each_stage_and_tensor_rank_into_blocks_of_ep_replicas_and_expert_data_groups_stride_them()
    {
        var grid = ParallelGrid.Parse("dp=8,pp=2,tp=1,ep=4");
        Assert.Equal(ParallelGrid.Of(8, 2, 1, 4), grid);
        Assert.Equal("dp=8 pp=2 tp=1 ep=4", grid.ToString());

        var rank = grid.RankOf(new GridCoordinates(6, 1, 0));
        Assert.Equal([9, 11, 13, 15], grid.ExpertGroupOf(rank).ToArray());
        Assert.Equal([5, 13], grid.ExpertDataGroupOf(rank).ToArray());
        Assert.Equal(("ep[block1,pp1,tp0]", "edp[ep2,pp1,tp0]"), grid.ExpertGroupNames(rank));
        // Every rank is in one expert group and one expert-data group, at its expert rank and its block.
        foreach (var r in Enumerable.Range(0, grid.Size))
        {
            var data = grid.CoordinatesOf(r).Data;
            Assert.Equal(data % 4, grid.ExpertGroupOf(r).ToList().IndexOf(r));
            Assert.Equal(data / 4, grid.ExpertDataGroupOf(r).ToList().IndexOf(r));
            Assert.Single(grid.ExpertGroupOf(r).Intersect(grid.ExpertDataGroupOf(r)));
        }
        Assert.Equal("dp=4 pp=1 tp=2", ParallelGrid.Of(4, 1, 2, 1).ToString());
    }

    [Theory]
    [InlineData("dp=2,pp=2,tp=2")]
    [InlineData("dp=8,pp=2,tp=1,ep=4")]
    [InlineData("dp=4,ep=4")]
    [InlineData("dp=1,pp=1,tp=1")]
    public void A_ranks_groups_are_its_axes_outermost_first_then_its_expert_groups_and_every_group_is_listed_once(string text)
    {
        var grid = ParallelGrid.Parse(text);
        foreach (var rank in Enumerable.Range(0, grid.Size))
        {
            var groups = grid.GroupsOf(rank);
            var axes = GridAxes.All.Where(a => grid.SizeOf(a) > 1).ToList();
            Assert.Equal(axes.Cast<GridAxis?>(), groups.Take(axes.Count).Select(g => g.Axis));
            foreach (var (group, axis) in groups.Zip(axes))
            {
                Assert.Equal(grid.GroupName(axis, rank), group.Name);
                Assert.Equal(grid.CoordinatesOf(rank)[axis], group.IndexOf(rank));
            }
            var experts = groups.Skip(axes.Count).ToList();
            Assert.Equal(grid.Ep == 1 ? 0 : grid.Dp > grid.Ep ? 2 : 1, experts.Count);
            if (grid.Ep > 1)
            {
                Assert.Equal((GridGroupRole.Experts, grid.ExpertGroupNames(rank).Expert, grid.CoordinatesOf(rank).Data % grid.Ep), (experts[0].Role, experts[0].Name, experts[0].IndexOf(rank)));
                if (experts.Count == 2) Assert.Equal(grid.ExpertDataGroupOf(rank), experts[1].Ranks);
            }
        }
        // Listed once each: a group's members all list it, and no rank of another group does.
        var all = grid.Groups();
        Assert.Equal(all.Count, all.Select(g => g.Name).Distinct().Count());
        foreach (var group in all)
            Assert.All(Enumerable.Range(0, grid.Size), r => Assert.Equal(group.Ranks.Contains(r), grid.GroupsOf(r).Any(g => g.Name == group.Name && g.Ranks.SequenceEqual(group.Ranks))));
        Assert.Equal(GridAxes.All.Sum(a => grid.SizeOf(a) > 1 ? grid.Size / grid.SizeOf(a) : 0)
            + (grid.Ep > 1 ? grid.Size / grid.Ep + (grid.Dp > grid.Ep ? grid.Size / (grid.Dp / grid.Ep) : 0) : 0), all.Count);
        if (all.Count > 0) Assert.Throws<ArgumentOutOfRangeException>(() => all[0].IndexOf(grid.Size));
    }

    [Theory]
    [InlineData("dp=2,tp=x", "plan 'dp=2,tp=x': tp: 'x' is not a whole number")]
    [InlineData("dp=2,xp=2", "plan 'dp=2,xp=2': 'xp=2': expected dp=N, pp=N, tp=N, ep=N or zero=N")]
    [InlineData("dp=6,ep=4", "plan 'dp=6,ep=4': ep: 4 does not divide dp 6 (expert groups are made of replicas)")]
    [InlineData("dp=2,dp=4", "plan 'dp=2,dp=4': dp: given more than once")]
    [InlineData("dp=0,tp=2", "plan 'dp=0,tp=2': dp: must be at least 1, got 0")]
    [InlineData("tp=-1", "plan 'tp=-1': tp: '-1' is not a whole number")]
    public void A_bad_written_plan_is_refused_naming_the_part_and_its_value(string text, string message) =>
        Assert.Equal([message], Assert.Throws<ParallelGridException>(() => ParallelGrid.Parse(text)).Errors);
}
