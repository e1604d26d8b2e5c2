using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Resharding;

namespace Elastic.Tests.Checkpoints;

/// <summary>Who sends what to whom when state moves between layouts: disjoint pieces that cover exactly what each receiver needs.</summary>
public sealed class RegionTransferPlanTests
{
    private static TensorRegion Rows(long first, long count, long columns = 8) => new([first, 0], [count, columns]);

    private static IReadOnlyList<(string, TensorRegion)> Boxes(params (string Key, TensorRegion Region)[] boxes) => boxes;

    [Fact]
    public void Tp_2_to_tp_4_gives_each_receiver_its_quarter_from_the_half_that_holds_it()
    {
        IReadOnlyList<IReadOnlyList<(string, TensorRegion)>> held = [Boxes(("w", Rows(0, 8))), Boxes(("w", Rows(8, 8)))];
        IReadOnlyList<IReadOnlyList<(string, TensorRegion)>> wanted = [.. Enumerable.Range(0, 4).Select(q => Boxes(("w", Rows(4 * q, 4))))];

        var plan = RegionTransferPlan.Make(held, wanted);

        Assert.Equal([("w", Rows(0, 4))], plan.Pieces(0, 0));
        Assert.Equal([("w", Rows(4, 4))], plan.Pieces(0, 1));
        Assert.Empty(plan.Pieces(0, 2));
        Assert.Equal([("w", Rows(12, 4))], plan.Pieces(1, 3));
        Assert.Equal(64, plan.ElementsFrom(0));
    }

    [Fact]
    public void Tp_4_to_tp_1_gathers_the_whole_tensor_from_four_pieces()
    {
        IReadOnlyList<IReadOnlyList<(string, TensorRegion)>> held = [.. Enumerable.Range(0, 4).Select(q => Boxes(("w", Rows(4 * q, 4))))];
        var plan = RegionTransferPlan.Make(held, [Boxes(("w", Rows(0, 16)))]);

        Assert.All(Enumerable.Range(0, 4), s => Assert.Equal([("w", Rows(4 * s, 4))], plan.Pieces(s, 0)));
    }

    [Fact]
    public void Copies_held_by_several_sources_are_taken_from_all_of_them_in_turn()
    {
        // Two data-parallel replicas hold the same two tensors whole; four receivers want both.
        var both = Boxes(("a", Rows(0, 8)), ("b", Rows(0, 8)));
        var plan = RegionTransferPlan.Make([both, both], [both, both, both, both]);

        Assert.Equal(plan.ElementsFrom(0), plan.ElementsFrom(1));
        for (var receiver = 0; receiver < 4; receiver++)
        {
            // Each tensor comes whole from exactly one source.
            Assert.Equal(2, plan.Pieces(0, receiver).Count + plan.Pieces(1, receiver).Count);
            Assert.Single(plan.Pieces(0, receiver));
        }
    }

    [Fact]
    public void Overlapping_holders_give_disjoint_pieces_that_cover_the_wanted_box()
    {
        // One source holds rows 0..12, another 4..16 (layouts of different degrees), the receiver wants them all.
        var plan = RegionTransferPlan.Make([Boxes(("w", Rows(0, 12))), Boxes(("w", Rows(4, 12)))], [Boxes(("w", Rows(0, 16)))]);

        var pieces = plan.Pieces(0, 0).Concat(plan.Pieces(1, 0)).Select(p => p.Region).ToList();
        Assert.Equal(16 * 8, pieces.Sum(p => p.Elements));
        Assert.All(pieces, p => Assert.All(pieces.Where(q => !ReferenceEquals(p, q)), q => Assert.Null(p.Intersect(q))));
    }

    [Fact]
    public void A_box_no_source_holds_is_named()
    {
        var e = Assert.Throws<InvalidOperationException>(() => RegionTransferPlan.Make([Boxes(("w", Rows(0, 8)))], [Boxes(("w", Rows(0, 16)))]));
        Assert.Contains("no source holds w[8:16, 0:8], which receiver 0 needs", e.Message);
    }

    [Fact]
    public void Subtracting_an_inner_box_leaves_disjoint_boxes_of_the_rest()
    {
        var whole = new TensorRegion([0, 0, 0], [4, 6, 8]);
        var inner = new TensorRegion([1, 2, 3], [2, 2, 2]);

        var rest = RegionTransferPlan.Subtract(whole, inner).ToList();

        Assert.Equal(whole.Elements - inner.Elements, rest.Sum(r => r.Elements));
        Assert.All(rest, r => Assert.Null(r.Intersect(inner)));
        Assert.All(rest, r => Assert.All(rest.Where(q => !ReferenceEquals(r, q)), q => Assert.Null(r.Intersect(q))));
    }
}
