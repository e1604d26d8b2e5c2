using TorchSharp;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

public sealed class GradientAccumulationTests
{
    [Fact]
    public async Task Accumulated_micro_batches_equal_one_big_batch_within_float_tolerance()
    {
        // Dropout stays on: its masks are keyed by sample, so splitting the batch does not change them.
        var (maxAbs, maxRef, lossAccumulated, lossWhole) = await TestSpecs.OnDevice(() =>
        {
            var split = TestSpecs.Tiny(global: 16, micro: 2, dropout: 0.1);
            var whole = split with { Batch = new() { Global = 16, Micro = 16 } };
            using var a = new Trainer(split, TestSpecs.Corpus(split));
            using var b = new Trainer(whole, TestSpecs.Corpus(whole));
            var ga = a.RentGradient();
            var gb = b.RentGradient();
            var la = a.AccumulateBlock(step: 1, first: 0, count: 8, ga) / 8;
            var lb = b.AccumulateBlock(step: 1, first: 0, count: 1, gb);
            using var eight = 8.0.ToScalar();
            ga.div_(eight);
            return ((ga - gb).abs().max().item<float>(), gb.abs().max().item<float>(), la, lb);
        });
        Assert.True(maxRef > 1e-3f, "the reference gradient must not be trivially zero");
        Assert.True(maxAbs <= 1e-5f + 1e-4f * maxRef, $"max |accumulated - whole| = {maxAbs} (max |whole| = {maxRef})");
        Assert.Equal(lossWhole, lossAccumulated, 5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public async Task Summing_aligned_blocks_first_gives_the_same_bits_as_the_whole_tree(int blocks)
    {
        var (identical, lossWhole, lossBlocks) = await TestSpecs.OnDevice(() =>
        {
            var spec = TestSpecs.Tiny(global: 16, micro: 2);
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var whole = trainer.RentGradient();
            var lossWhole = trainer.AccumulateBlock(step: 3, first: 0, count: 8, whole);
            var size = 8 / blocks;
            var sums = new List<Tensor>();
            var losses = new List<double>();
            for (var j = 0; j < blocks; j++)
            {
                var sum = trainer.RentGradient();
                losses.Add(trainer.AccumulateBlock(step: 3, first: j * size, count: size, sum));
                sums.Add(sum);
            }
            var combined = Trainer.CombineBlocks(sums);
            var lossBlocks = Elastic.Training.Engine.PairwiseTree.Reduce(0, blocks, i => losses[i], (x, y) => x + y);
            return (whole.bytes.SequenceEqual(combined.bytes), lossWhole, lossBlocks);
        });
        Assert.True(identical, $"{blocks} blocks: combined gradient differs from the single-device tree");
        Assert.Equal(lossWhole, lossBlocks);
    }

    [Fact]
    public async Task Steps_taken_from_combined_blocks_reproduce_the_single_device_parameters()
    {
        var (single, split) = await TestSpecs.OnDevice(() =>
        {
            var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2);
            using var reference = new Trainer(spec, TestSpecs.Corpus(spec));
            using var blocked = new Trainer(spec, TestSpecs.Corpus(spec));
            for (var step = 1; step <= spec.Steps; step++)
            {
                reference.Step(step);
                // As four data-parallel replicas would: each sums its two micro-batches, then the sums are combined.
                var sums = Enumerable.Range(0, 4).Select(_ => blocked.RentGradient()).ToList();
                var loss = PairwiseTree.Reduce(0, 4, j => blocked.AccumulateBlock(step, 2 * j, 2, sums[j]), (x, y) => x + y);
                blocked.ApplyUpdate(step, Trainer.CombineBlocks(sums), loss);
                sums.ForEach(blocked.ReleaseGradient);
            }
            return (reference.ParameterDigest(), blocked.ParameterDigest());
        });
        Assert.Equal(single, split);
    }

    [Fact]
    public async Task The_gradient_is_clipped_to_the_configured_global_norm()
    {
        var (reported, applied) = await TestSpecs.OnDevice(() =>
        {
            var spec = TestSpecs.Tiny() with { Optimizer = new() { ClipNorm = 0.01, WarmupSteps = 0 } };
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var sum = trainer.RentGradient();
            var loss = trainer.AccumulateBlock(1, 0, trainer.MicroBatchesPerStep, sum);
            var result = trainer.ApplyUpdate(1, sum, loss);
            // The parameters' gradients lead the flat buffer; a tied head's own contribution (already added in) follows them.
            return (result.GradNorm, (double)sum.narrow(0, 0, trainer.ParameterCount).norm().item<float>());
        });
        Assert.True(reported > 0.01, $"the raw norm {reported} should exceed the clip threshold for this test to mean anything");
        Assert.Equal(0.01, applied, 5);
    }
}
