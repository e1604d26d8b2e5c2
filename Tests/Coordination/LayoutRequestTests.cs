using Elastic.Grains.Jobs;
using Elastic.Jobs;

namespace Elastic.Tests.Coordination;

/// <summary>A layout asked for a running job: refused with every reason and its numbers, or accepted as the grid it names.</summary>
public sealed class LayoutRequestTests
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } }; // S = 4, 8 micro-batches

    [Theory]
    [InlineData("dp=1,tp=4", 1, 1, 4)]
    [InlineData("dp=2,tp=2", 2, 1, 2)]
    [InlineData("dp=4", 4, 1, 1)]
    [InlineData("dp=1,pp=2,tp=2", 1, 2, 2)]
    [InlineData("dp=2,pp=2", 2, 2, 1)]
    [InlineData("dp=3", 3, 1, 1)]
    public void A_layout_that_fits_the_spec_and_the_silos_is_accepted(string plan, int dp, int pp, int tp)
    {
        var layout = LayoutRequest.Check(plan, Spec, largestSilo: 4);
        Assert.Equal((dp, pp, tp), (layout.Grid.Dp, layout.Grid.Pp, layout.Grid.Tp));
        Assert.Null(layout.Zero);
    }

    [Theory]
    [InlineData("dp=4,zero=2", 4, 2)]
    [InlineData("dp=3,zero=3", 3, 3)]
    public void A_zero_stage_rides_along_with_the_grid(string plan, int dp, int zero)
    {
        var layout = LayoutRequest.Check(plan, Spec, largestSilo: 4);
        Assert.Equal((dp, zero), (layout.Grid.Dp, layout.Zero));
        Assert.Equal($"dp={dp} pp=1 tp=1 zero={zero}", layout.ToString());
    }

    [Theory]
    [InlineData("dp=1,tp=8", 8, "tp = 8 does not divide model.tensorShards 4")]
    [InlineData("dp=1,tp=4", 2, "tp = 4 needs 4 devices on one silo, but the largest silo has 2")]
    [InlineData("dp=4,tp=2", 4, "dp x pp x tp = 4 x 1 x 2 = 8 device(s) is outside the job's devices.min..max 1..4")]
    [InlineData("dp=9", 4, "dp = 9 is more than the 8 micro-batches per step")]
    [InlineData("dp=1,pp=4", 4, "pp = 4: pipeline 4 x virtualStages 1 = 4 chunks need one layer each, but model.layers is 2")]
    [InlineData("dp=one", 4, "--plan: ")]
    [InlineData("dp=2,zero=4", 4, "zero = 4 is not a ZeRO stage this engine runs (0 to 3)")]
    [InlineData("dp=2,zero=x", 4, "zero: 'x' is not a whole number")]
    [InlineData("dp=2,zero=1,zero=2", 4, "zero: given more than once")]
    public void A_layout_that_cannot_run_is_refused_with_its_numbers(string plan, int largestSilo, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => LayoutRequest.Check(plan, Spec, largestSilo));
        Assert.Contains(reason, e.Message);
    }

    [Theory]
    [InlineData("dp=3,pp=2")]
    [InlineData("dp=3,pp=2,zero=3")]
    public void Pipelines_may_split_the_micro_batches_unevenly(string plan)
    {
        var layout = LayoutRequest.Check(plan, Spec with { Devices = new DeviceSpec { Min = 1, Max = 6 } }, largestSilo: 4);

        Assert.Equal((3, 2), (layout.Grid.Dp, layout.Grid.Pp));
    }

    [Fact]
    public void Expert_groups_may_split_the_micro_batches_unevenly()
    {
        var spec = Spec with { Model = Spec.Model with { Moe = new MoeSpec { Experts = 4 } }, Devices = new DeviceSpec { Min = 1, Max = 8 } };

        var layout = LayoutRequest.Check("dp=6,ep=2", spec, largestSilo: 4);

        Assert.Equal((6, 2), (layout.Grid.Dp, layout.Grid.Ep));
    }

    [Theory]
    [InlineData(12, null)]
    [InlineData(10, "pp = 2: the interleaved schedule needs the micro-batches per step (3) to be a multiple of pipeline 2 (each of dp 2 replicas runs 2 to 3 micro-batches)")]
    public void Interleaving_splits_the_micro_batches_in_multiples_of_pp(int global, string? reason)
    {
        var spec = Spec with { Batch = new BatchSpec { Global = global, Micro = 2 }, Parallel = new ParallelSpec { Schedule = "interleaved" } };

        // Six micro-batches: blocks of 2 and 4; five cannot be split in multiples of 2.
        if (reason is null) Assert.Equal(2, LayoutRequest.Check("dp=2,pp=2", spec, largestSilo: 4).Grid.Dp);
        else Assert.Contains(reason, Assert.Throws<ArgumentException>(() => LayoutRequest.Check("dp=2,pp=2", spec, largestSilo: 4)).Message);
    }

    [Fact]
    public void Every_reason_is_given_at_once()
    {
        var e = Assert.Throws<ArgumentException>(() => LayoutRequest.Check("dp=4,tp=8", Spec, largestSilo: 2));
        Assert.Contains("does not divide model.tensorShards 4", e.Message);
        Assert.Contains("the largest silo has 2", e.Message);
        Assert.Contains("32 device(s) is outside", e.Message);
        Assert.EndsWith("nothing changed", e.Message);
    }
}
