using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Training.Experts;

/// <summary>
/// A MoE GPT trains with the same bits on every layout: data, tensor (with and without a split sequence) and pipeline
/// parallelism, ZeRO and recomputation end with the one-device digest and report the same losses, gradient norms and
/// expert loads at every step.
/// </summary>
public sealed class MoeTrainingTests
{
    /// <summary>Four layers, every second one with 4 experts, top 2, dropout and tied embeddings; 8 micro-batches of 2.</summary>
    internal static TrainingSpec Spec(int zero = 0, int pipeline = 1, int tensor = 1, bool sequence = true, double? capacity = null, string recompute = "none", int steps = 3) =>
        TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4, Moe = new MoeSpec { Experts = 4, TopK = 2, Every = 2, CapacityFactor = capacity } },
            Parallel = new ParallelSpec { Zero = zero, Pipeline = pipeline, Tensor = tensor, Sequence = sequence },
            Runtime = new RuntimeSpec { Recompute = recompute },
        };

    public static TheoryData<string, int, int, int, int, int, bool> Layouts => new()
    {
        // label, dp, pp, tp, ep, zero, sequence parallel
        { "dp 2", 2, 1, 1, 1, 0, true },
        { "dp 4", 4, 1, 1, 1, 0, true },
        { "pp 2", 1, 2, 1, 1, 0, true },
        { "tp 2 split sequence", 1, 1, 2, 1, 0, true },
        { "tp 2 whole sequence", 1, 1, 2, 1, 0, false },
        { "dp 2 x tp 2 zero 1", 2, 1, 2, 1, 1, true },
        { "dp 2 zero 3", 2, 1, 1, 1, 3, true },
        { "dp 2 x pp 2 zero 2", 2, 2, 1, 1, 2, true },
        { "ep 2", 2, 1, 1, 2, 0, true },
        { "ep 4", 4, 1, 1, 4, 0, true },
        { "dp 4 ep 2", 4, 1, 1, 2, 0, true },
        { "dp 2 x tp 2 ep 2", 2, 1, 2, 2, 0, true },
        { "dp 4 x pp 2 ep 2", 4, 2, 1, 2, 0, true },
        { "dp 4 ep 2 zero 1", 4, 1, 1, 2, 1, true },
        { "dp 4 ep 2 zero 2", 4, 1, 1, 2, 2, true },
        { "dp 2 x pp 2 ep 2 zero 2", 2, 2, 1, 2, 2, true },
    };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Every_layout_ends_with_the_one_device_digest_and_the_same_steps(string label, int dp, int pp, int tp, int ep, int zero, bool sequence)
    {
        var spec = Spec(zero, pp, tp, sequence, capacity: 1.0);
        var reference = await TestSpecs.OneDeviceSteps(spec);

        var ranks = await Train(spec, ParallelGrid.Of(dp, pp, tp, ep), sequence, EngineGrid.AllSteps);

        Assert.All(ranks, r =>
        {
            Assert.True(reference.Digest == r.Digest, $"{label}: digest {r.Digest} differs from one device's {reference.Digest}");
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Fact]
    public async Task Each_step_reports_tokens_per_expert_dropped_choices_and_the_router_losses()
    {
        var spec = Spec(capacity: 1.0, steps: 2);

        var (steps, _) = await TestSpecs.OneDeviceSteps(spec);

        Assert.All(steps, step =>
        {
            var experts = Assert.IsType<Elastic.Jobs.Reports.ExpertLoad>(step.Experts);
            Assert.Equal([1, 3], experts.Layers.Select(l => l.Layer));
            Assert.All(experts.Layers, layer =>
            {
                // Every token of the step chose top-k experts; capacity 1.0 drops what the busiest experts could not take.
                Assert.Equal((long)spec.Batch.Global * spec.Model.Context * 2, layer.Tokens.Sum());
                Assert.InRange(layer.Dropped, 0, layer.Tokens.Sum() - 1);
                Assert.InRange(layer.Aux, 0.5, 4.0);
                Assert.True(layer.Z > 0);
            });
            Assert.True(experts.MaxOverMean >= 1);
        });
    }

    [Theory]
    [InlineData(2, 0, 4, 0)]
    [InlineData(4, 0, 1, 0)]
    [InlineData(1, 0, 2, 0)]
    [InlineData(2, 2, 1, 0)]
    [InlineData(1, 1, 2, 2)]
    public async Task A_checkpoint_written_at_one_ep_resumes_at_another_to_the_uninterrupted_digest(int savedEp, int savedZero, int resumedEp, int resumedZero)
    {
        var spec = Spec(zero: savedZero, steps: 4);
        var reference = await TestSpecs.ReferenceDigest(spec);

        // Every rank writes its share: an expert tensor's regions by the replicas hosting them, the rest in rotation; under
        // ZeRO the moments by their owner.
        var (chunks, digests) = await EngineGrid.CheckpointAndResume(spec, ParallelGrid.Of(4, 1, 1, savedEp),
            spec with { Parallel = spec.Parallel with { Zero = resumedZero } }, ParallelGrid.Of(Math.Max(2, resumedEp), 1, 1, resumedEp));

        Assert.All(digests, d => Assert.Equal(reference, d));
        // Experts are saved as regions of the stacked [E, ...] tensors, one per expert rank.
        var fc = chunks.Where(c => c.Key == "param/h.1.mlp.experts.c_fc.weight").ToList();
        Assert.Equal(savedEp, fc.Count);
        Assert.Equal(Enumerable.Range(0, savedEp).Select(r => (long)r * 4 / savedEp), fc.Select(c => c.GlobalOffset[0]).Order());
    }

    [Theory]
    [InlineData("full")]
    [InlineData("selective")]
    public async Task Recomputation_gives_the_digest_of_keeping_everything(string recompute)
    {
        var reference = await TestSpecs.OneDeviceSteps(Spec());

        var recomputed = await TestSpecs.OneDeviceSteps(Spec(recompute: recompute));

        Assert.Equal(reference.Digest, recomputed.Digest);
        Assert.Equal(reference.Steps, recomputed.Steps);
    }

    private static async Task<T[]> Train<T>(TrainingSpec spec, ParallelGrid grid, bool sequence, Func<DataParallelTrainer, T> work)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        return await EngineGrid.Run(plane, spec, grid, sequence, (_, trainer) => work(trainer), name: $"moe-{grid}");
    }
}
