using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;
using Elastic.Planning.Hardware;

namespace Elastic.Tests.Planning;

/// <summary>The memory and step-time models on shapes whose figures can be worked out by hand.</summary>
public sealed class CostModelTests
{
    // 2 layers, d 32, MLP 128, vocabulary 256, context 32, tied embeddings; 8 micro-batches of 2.
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 8 } };

    [Theory]
    // Per layer split by tp: QKV 3·32² + 3·32, output 32², MLP 32·128 + 128 + 128·32 = 12,512; replicated: LayerNorms, two biases 6·32.
    // The token embedding 256·32 split, positions 32·32 and the final LayerNorm 2·32 replicated (the head is tied).
    [InlineData(1, 2 * (12_512 + 192) + 8_192 + 1_024 + 64)]
    [InlineData(2, 2 * (6_256 + 192) + 4_096 + 1_024 + 64)]
    [InlineData(4, 2 * (3_128 + 192) + 2_048 + 1_024 + 64)]
    public void Tensor_parallelism_splits_the_split_layers_parameters(int tp, long parameters) =>
        Assert.Equal(parameters, MemoryEstimate.For(Spec, new Layout(1, Tp: tp)).Parameters);

    [Fact]
    public void The_whole_model_counts_every_parameter_once() =>
        Assert.Equal(2 * (12_512 + 192) + 8_192 + 1_024 + 64, new ModelShape(Spec.Model, 1).Parameters);

    [Theory]
    [InlineData("gpt2", 0, true, false)]
    [InlineData("gpt2", 0, true, true)]
    [InlineData("llama", 4, true, false)]
    [InlineData("llama", 2, false, false)]
    [InlineData("llama", 1, true, false)]
    [InlineData("llama", 2, true, true)]
    public void Each_tensor_rank_holds_what_the_engines_parameter_layout_gives_it(string architecture, int kvHeads, bool tied, bool experts)
    {
        var spec = Spec with { Model = Spec.Model with { Architecture = architecture, KvHeads = kvHeads, TiedEmbeddings = tied, Moe = experts ? new MoeSpec { Experts = 4, Every = 2 } : null } };
        var layouts = Elastic.Training.Model.ParameterLayout.Of(spec.Model);
        foreach (var tp in new[] { 1, 2, 4 })
        {
            var held = layouts.Sum(l => l.Shape.Aggregate(1L, (a, b) => a * b) / (l.TensorSplit ? tp : 1));
            Assert.Equal(held, MemoryEstimate.For(spec, new Layout(1, Tp: tp)).Parameters);
        }
    }

    [Fact]
    public void A_llama_layer_costs_its_grouped_projections_and_three_mlp_matrices()
    {
        // d 32, 4 heads of 8, 1 key/value head (8 wide), SwiGLU width 128; one micro-batch of 32 tokens.
        var llama = new ModelShape(Spec.Model with { Architecture = "llama", KvHeads = 1 }, 1);
        Assert.Equal(128, (Spec.Model with { Architecture = "llama" }).FfnSize);
        Assert.Equal(2.0 * 32 * (2 * 32 * 32 + 2 * 32 * 8) + 4.0 * 32 * 32 * 32 + 2.0 * 32 * 3 * 32 * 128, llama.LayerForwardFlops(0));
    }

    [Fact]
    public void With_the_sequence_split_tp_splits_every_activation_and_keeps_the_gathered_inputs_without_it_only_the_split_layers()
    {
        // One virtual shard per rank on both sides (S = tp), so no rank keeps extra shard copies.
        TrainingSpec Shards(int s) => Spec with { Model = Spec.Model with { TensorShards = s } };
        var shape = new ModelShape(Spec.Model, Spec.Batch.Micro);
        var whole = MemoryEstimate.For(Shards(1), new Layout(1)).ActivationBytes;
        var split = MemoryEstimate.For(Shards(2), new Layout(1, Tp: 2)).ActivationBytes;
        var unsplitSequence = MemoryEstimate.For(Shards(2) with { Parallel = new ParallelSpec { Sequence = false } }, new Layout(1, Tp: 2)).ActivationBytes;

        Assert.Equal(whole / 2 + 4L * Spec.Model.Layers * shape.GatheredElements, split);
        Assert.Equal(whole / 2 + 4L * Spec.Model.Layers * shape.SequenceElements / 2 + 4L * shape.EmbeddingActivationElements / 2, unsplitSequence);
    }

    [Fact]
    public void A_rank_holding_several_virtual_shards_keeps_copies_of_the_column_regions_input_for_each()
    {
        TrainingSpec Shards(int s) => Spec with { Model = Spec.Model with { TensorShards = s } };
        var shape = new ModelShape(Spec.Model, Spec.Batch.Micro);
        var one = MemoryEstimate.For(Shards(1), new Layout(1)).ActivationBytes;
        var eight = MemoryEstimate.For(Shards(8), new Layout(1)).ActivationBytes;

        // Per layer and micro-batch in flight (1 here): 5 token x d per extra shard (the inputs of QKV and of the MLP's first
        // projection and the sums that join the shards; measured: the native heap over a step at S = 1 and 8).
        Assert.Equal(4L * Spec.Model.Layers * 5 * 7 * shape.Tokens * Spec.Model.DModel, eight - one);
    }

    [Fact]
    public void Bf16_keeps_activations_in_half_the_bytes_and_the_rest_in_fp32()
    {
        var fp32 = MemoryEstimate.For(Spec, new Layout(1));
        var bf16 = MemoryEstimate.For(Spec with { Runtime = new RuntimeSpec { Precision = "bf16" } }, new Layout(1));

        Assert.Equal(fp32.ActivationBytes / 2, bf16.ActivationBytes);
        Assert.Equal(fp32.ParameterBytes + fp32.GradientBytes + fp32.OptimizerBytes, bf16.ParameterBytes + bf16.GradientBytes + bf16.OptimizerBytes);
    }

    [Fact]
    public void An_accelerator_holds_everything_but_the_host_staging()
    {
        var memory = MemoryEstimate.For(Spec, new Layout(4));

        Assert.Equal(memory.TotalBytes - memory.StagingBytes, memory.DeviceBytes(hostMemory: false));
        Assert.Equal(memory.TotalBytes, memory.DeviceBytes(hostMemory: true));
    }

    [Fact]
    public void On_one_device_a_step_is_three_forward_passes_of_every_micro_batch()
    {
        var costs = new StageCosts(Spec, 1, 1, 1, 0);
        var shape = new ModelShape(Spec.Model, 2);
        var forward = shape.LayerForwardFlops(0) + shape.LayerForwardFlops(1) + shape.HeadForwardFlops;

        var step = StepTimeModel.Of(Spec, costs, new Layout(1), PlanningSpecs.ArithmeticOnly(), 8);

        Assert.Equal(forward, costs.ForwardFlops[0]);
        Assert.Equal(8 * 3 * forward / 1e12, step.Seconds, 15);
        Assert.Equal(step.Seconds, step.Compute);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(4, 4)]
    public void Tensor_parallelism_divides_the_arithmetic_of_a_rank(int tp, int parts)
    {
        var one = StepTimeModel.Of(Spec, new StageCosts(Spec, 1, 1, 1, 0), new Layout(1), PlanningSpecs.ArithmeticOnly(), 8).Seconds;

        var split = StepTimeModel.Of(Spec, new StageCosts(Spec, tp, 1, 1, 0), new Layout(1, Tp: tp), PlanningSpecs.ArithmeticOnly(), 8).Seconds;

        Assert.Equal(one / parts, split, 15);
    }

    [Theory]
    [InlineData(1, 8)]
    [InlineData(2, 4)]
    public void A_pipeline_runs_its_micro_batches_at_the_busiest_stages_pace_plus_a_vth_of_the_fill_and_drain(int dp, int micros)
    {
        var spec = Spec with { Model = Spec.Model with { Layers = 4 } };
        foreach (var v in new[] { 1, 2 })
        {
            var costs = new StageCosts(spec, 1, 2, v, 0);
            var stage = costs.ForwardFlops.Select(f => 3 * f / 1e12).ToArray();

            var step = StepTimeModel.Of(spec, costs, new Layout(dp, 2, VirtualStages: v), PlanningSpecs.ArithmeticOnly(), 8);

            Assert.Equal(micros * stage.Max() + (stage.Sum() - stage.Max()) / v, step.Seconds, 15);
            Assert.Equal(step.Seconds - micros * stage.Max(), step.Bubble, 15);
        }
    }

    [Fact]
    public void A_ring_all_reduce_moves_twice_the_n_minus_1_nths_in_2_n_minus_1_hops()
    {
        var link = new LinkProfile { BusBandwidthGBs = 100, LatencyMicroseconds = 5 };

        Assert.Equal(2.0 * 3 / 4 * 1e9 / 100e9 + 6 * 5e-6, CollectiveTime.AllReduce(1e9, 4, link), 15);
        Assert.Equal(3.0 / 4 * 1e9 / 100e9 + 3 * 5e-6, CollectiveTime.AllGather(1e9, 4, link), 15);
        Assert.Equal(0, CollectiveTime.AllReduce(1e9, 1, link));
    }

    [Fact]
    public void A_group_that_spans_nodes_waits_for_the_network()
    {
        var device = PlanningSpecs.ArithmeticOnly() with
        {
            IntraNode = new LinkProfile { BusBandwidthGBs = 1000 },
            InterNode = new LinkProfile { BusBandwidthGBs = 1 },
        };
        var costs = new StageCosts(Spec, 1, 1, 1, 0);

        var inside = StepTimeModel.Of(Spec, costs, new Layout(8), device, devicesPerNode: 8).DataParallel;
        var across = StepTimeModel.Of(Spec, costs, new Layout(8), device, devicesPerNode: 4).DataParallel;

        Assert.Equal(1000, across / inside, 9);
    }

    [Fact]
    public void The_published_profiles_name_their_sources_and_a_silos_device_model_finds_its_profile()
    {
        Assert.All(HardwareProfiles.All, p => Assert.NotEmpty(p.Sources));
        Assert.Equal("H100-80GB", HardwareProfiles.ForDeviceModel("cuda: NVIDIA H100 80GB HBM3")!.Name);
        Assert.Equal("MI300X-192GB", HardwareProfiles.ForDeviceModel("AMD Instinct MI300X")!.Name);
        Assert.Null(HardwareProfiles.ForDeviceModel("cuda: NVIDIA A10"));
        Assert.Equal(989.4, HardwareProfiles.Named("h100-80gb")!.Peak("bf16"));
    }
}
