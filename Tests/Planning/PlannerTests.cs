using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;

namespace Elastic.Tests.Planning;

/// <summary>The planner on inventories whose best layout is clear: what it chooses, what it keeps, and why it rejects the rest.</summary>
public sealed class PlannerTests
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 8 } };

    [Fact]
    public void A_small_model_on_cpu_devices_runs_data_parallel_on_all_of_them()
    {
        var ranking = new Planner(Spec).Rank(ClusterShape.Parse("2x2:cpu"), LayoutPins.None);

        Assert.Equal(new Layout(4), ranking.Choice!.Layout with { Zero = 0, Recompute = "none" });
        Assert.True(ranking.Best.Zip(ranking.Best.Skip(1)).All(p => p.First.TokensPerSecond >= p.Second.TokensPerSecond * (1 - 1e-4)));
    }

    [Fact]
    public void Pinned_dimensions_are_kept_in_every_layout_offered()
    {
        var spec = Spec with { Parallel = new ParallelSpec { Tensor = 2, Zero = 1 } };

        var ranking = new Planner(spec).Rank(ClusterShape.Parse("2x4:cpu"), SpecLayout.Pins(spec), keep: 20);

        Assert.NotEmpty(ranking.Best);
        Assert.All(ranking.Best, p => Assert.True((p.Layout.Tp, p.Layout.Zero) == (2, 1), p.Layout.ToString()));
    }

    [Fact]
    public void A_model_one_device_cannot_hold_is_split_and_the_rejection_says_how_much_it_needed()
    {
        // 64 MiB devices: one device holds neither the whole model's state nor its activations.
        var spec = Spec with { Model = Spec.Model with { Layers = 8, DModel = 256, Heads = 8, Context = 128 }, Batch = new BatchSpec { Global = 8, Micro = 4 } };
        var device = PlanningSpecs.ArithmeticOnly(memoryGiB: 64.0 / 1024);
        var cluster = new ClusterShape([new NodeGroup(2, 4, device)]);

        var ranking = new Planner(spec).Rank(cluster, LayoutPins.None, keep: 50);

        Assert.NotNull(ranking.Choice);
        Assert.All(ranking.Best, p => Assert.True(p.Memory.DeviceBytes(false) <= 64L * 1024 * 1024 * Planner.MemoryHeadroom && p.Layout.Tp * p.Layout.Pp > 1, p.ToString()));
        Assert.Contains(ranking.Rejected, r => r.StartsWith("tp=1,pp=1: out of memory: the smallest, ", StringComparison.Ordinal) && r.Contains("usable", StringComparison.Ordinal));
    }

    [Fact]
    public void When_nothing_fits_there_is_no_choice_and_every_family_says_why()
    {
        var ranking = new Planner(Spec).Rank(new ClusterShape([new NodeGroup(1, 2, PlanningSpecs.ArithmeticOnly(memoryGiB: 0.25 / 1024))]), LayoutPins.None);

        Assert.Null(ranking.Choice);
        Assert.Contains(ranking.Rejected, r => r.Contains("out of memory", StringComparison.Ordinal));
        Assert.Contains(ranking.Rejected, r => r.StartsWith("tp=4: needs 4 devices on one node; the largest has 2", StringComparison.Ordinal));
    }

    [Fact]
    public void A_tp_2_pp_2_job_left_with_three_devices_gets_a_layout_of_at_most_three()
    {
        var ranking = new Planner(Spec).Rank(ClusterShape.Parse("1x2:cpu+1x1:cpu"), LayoutPins.None);

        Assert.InRange(ranking.Choice!.Layout.Devices, 1, 3);
        Assert.Empty(LayoutRules.Problems(Spec, ranking.Choice.Layout, largestNode: 2, blocks: 3));
    }

    [Fact]
    public void At_ten_thousand_gpus_gpt3_gets_a_layout_that_fits_with_tensor_parallelism_inside_a_node()
    {
        var spec = PlanningSpecs.Gpt3();
        var cluster = ClusterShape.Parse("1250x8:H100-80GB");

        var ranking = new Planner(spec).Rank(cluster, SpecLayout.Pins(spec));

        var choice = ranking.Choice!;
        Assert.True(ranking.Considered > 100_000, $"{ranking.Considered} layouts weighed");
        Assert.InRange(choice.Layout.Devices, 1, 10_000);
        Assert.InRange(choice.Layout.Tp, 1, 8);
        Assert.True(choice.Memory.DeviceBytes(false) <= 80L * (1L << 30) * Planner.MemoryHeadroom);
        Assert.InRange(choice.Mfu!.Value, 0.01, 1);
        Assert.Empty(LayoutRules.Problems(spec, choice.Layout, largestNode: 8, blocks: 10_000 / choice.Layout.Tp));
    }

    [Theory]
    [InlineData("1250x8:H100-80GB", 10_000, 8)]
    [InlineData("4x8:A100-80GB+2x4:cpu", 40, 8)]
    public void A_shape_is_nodes_of_devices_of_a_published_profile(string text, int devices, int largest)
    {
        var shape = ClusterShape.Parse(text);

        Assert.Equal((devices, largest, text), (shape.Devices, shape.LargestNode, shape.ToString()));
    }

    [Theory]
    [InlineData("1250x8", "unknown device profile ''")]
    [InlineData("1250x8:B300", "unknown device profile 'B300'; known: H100-80GB")]
    [InlineData("0x8:H100-80GB", "'0x8:H100-80GB': expected NODESxDEVICES:PROFILE")]
    [InlineData("ax8:H100-80GB", "'ax8:H100-80GB': expected NODESxDEVICES:PROFILE")]
    [InlineData("1000000x8:H100-80GB", "8000000 devices is more than")]
    public void A_bad_shape_is_refused_naming_the_part_and_value(string text, string reason) =>
        Assert.Contains(reason, Assert.Throws<FormatException>(() => ClusterShape.Parse(text)).Message);
}
