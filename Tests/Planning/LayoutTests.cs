using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.Tests.Planning;

/// <summary>One layout record, written in the --plan notation, and the one rule set every caller asks.</summary>
public sealed class LayoutTests
{
    [Theory]
    [InlineData(4, 1, 1, 1, 0, 1, "none", false, "dp=4,pp=1,tp=1")]
    [InlineData(2, 2, 2, 1, 1, 1, "none", false, "dp=2,pp=2,tp=2,zero=1")]
    [InlineData(2, 2, 1, 2, 0, 3, "full", false, "dp=2,pp=2,tp=1,ep=2,v=3,recompute=full")]
    [InlineData(1, 2, 1, 1, 0, 1, "none", true, "dp=1,pp=2,tp=1,schedule=interleaved")]
    public void A_layout_is_written_in_the_plan_notation_with_neutral_dimensions_left_out(int dp, int pp, int tp, int ep, int zero, int v, string recompute, bool interleaved, string text) =>
        Assert.Equal(text, new Layout(dp, pp, tp, ep, zero, v, recompute, interleaved).ToString());

    [Fact]
    public void Numbers_that_make_no_layout_are_named_with_their_values()
    {
        var problems = new Layout(0, 1, 1, Zero: 4, VirtualStages: 0, Recompute: "some").Problems();

        Assert.Contains("dp: must be at least 1, got 0", problems);
        Assert.Contains("zero = 4 is not a ZeRO stage this engine runs (0 to 3)", problems);
        Assert.Contains("v: must be at least 1, got 0", problems);
        Assert.Contains("recompute: 'some' is not one of none, selective, full", problems);
    }

    private static readonly TrainingSpec Spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 8 } }; // S = 4, 8 micro-batches, 2 layers

    [Fact]
    public void The_rules_give_every_reason_a_layout_cannot_run_on_these_silos_at_once()
    {
        var problems = LayoutRules.Problems(Spec, new Layout(9, 2, 8, VirtualStages: 2), largestNode: 4, blocks: 3);

        Assert.Contains("tp = 8 does not divide model.tensorShards 4", problems);
        Assert.Contains("tp = 8 needs 8 devices on one silo, but the largest silo has 4", problems);
        Assert.Contains("dp x pp x tp = 9 x 2 x 8 = 144 device(s) is outside the job's devices.min..max 1..8", problems);
        Assert.Contains("dp x pp = 9 x 2 = 18 group(s) of 8 device(s) on one silo are needed, but the silos hold 3", problems);
        Assert.Contains("dp = 9 is more than the 8 micro-batches per step split in multiples of pp 2 (interleaved) allow (a replica would have none)", problems);
    }

    [Fact]
    public void Interleaving_needs_a_pipeline_and_experts_need_a_mixture()
    {
        var problems = LayoutRules.Problems(Spec, new Layout(2, 1, 1, Ep: 2, VirtualStages: 2));

        Assert.Contains("v = 2 interleaves pipeline stages, but pp is 1", problems);
        Assert.Contains("ep = 2 spreads experts, but the job's model has none (model.moe)", problems);
    }

    [Fact]
    public void A_layout_the_spec_and_silos_allow_has_no_problem() =>
        Assert.Empty(LayoutRules.Problems(Spec, new Layout(2, 2, 2, Zero: 1, VirtualStages: 1, Recompute: "selective"), largestNode: 4, blocks: 4));

    [Fact]
    public void A_spec_pins_what_it_gives_and_runs_its_neutral_layout_alone()
    {
        var spec = Spec with { Parallel = new ParallelSpec { Tensor = 2, Zero = 1 }, Runtime = new RuntimeSpec { Recompute = "full" } };

        var pins = SpecLayout.Pins(spec);

        Assert.Equal("tp=2,zero=1,recompute=full", pins.ToString());
        Assert.True(pins.Admit(new Layout(4, 2, 2, Zero: 1, Recompute: "full")));
        Assert.False(pins.Admit(new Layout(4, 1, 1, Zero: 1, Recompute: "full")));
        Assert.Equal("nothing", SpecLayout.Pins(Spec).ToString());
        Assert.Equal(new Layout(3, 1, 2, Zero: 1, Recompute: "full"), SpecLayout.At(spec, 3));
        Assert.Equal(new Layout(1), SpecLayout.At(Spec, 1));
    }

    [Fact]
    public void Resolving_a_spec_sets_every_parallel_field_to_the_layout_chosen()
    {
        var resolved = SpecLayout.Resolve(Spec, new Layout(2, 2, 2, Zero: 3, VirtualStages: 2, Recompute: "selective"));

        Assert.Equal((2, 2, 3, "interleaved", 2, "selective"), (resolved.Parallel.Pipeline, resolved.Parallel.Tensor, resolved.Parallel.Zero,
            resolved.Parallel.Schedule, resolved.Parallel.VirtualStages, resolved.Runtime.Recompute));
        Assert.Equal(new Layout(2, 2, 2, Zero: 3, VirtualStages: 2, Recompute: "selective", Interleaved: true), SpecLayout.At(resolved, 2));
    }

    [Fact]
    public void Auto_is_read_and_written_for_every_dimension_the_planner_may_choose()
    {
        var spec = SpecJson.Parse("""{ "parallel": { "tensor": "auto", "pipeline": 2, "zero": "auto" }, "runtime": { "recompute": "auto" } }""");

        Assert.Equal((null, 2, null), (spec.Parallel.Tensor, spec.Parallel.Pipeline, spec.Parallel.Zero));
        Assert.Null(spec.Runtime.Recompute);
        var written = SpecJson.Serialize(spec);
        Assert.Contains("\"tensor\": \"auto\"", written);
        Assert.Equal(spec.Parallel, SpecJson.Parse(written).Parallel);
    }

    [Fact]
    public void A_dimension_written_as_another_string_is_refused_by_field()
    {
        var e = Assert.Throws<SpecValidationException>(() => SpecJson.Parse("""{ "parallel": { "tensor": "two" } }"""));

        Assert.Contains(e.Errors, error => error.Field == "parallel.tensor" && error.Message.Contains("or \"auto\"", StringComparison.Ordinal));
    }
}
