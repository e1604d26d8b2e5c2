using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

/// <summary>runtime.precision on a CPU: bf16 really computes in bf16, trains as well as fp32, and keeps every promise fp32 makes.</summary>
public sealed class PrecisionTests
{
    private static TrainingSpec Spec(string precision, int steps = 6) => TestSpecs.Tiny(steps: steps, dropout: 0.1) with
    {
        Runtime = new RuntimeSpec { Precision = precision },
        Eval = new EvalSpec { Every = 0, Batches = 4 },
    };

    private static Task<RunReport> Run(TrainingSpec spec) => TestSpecs.OnDevice(() =>
    {
        using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
        return TrainingLoop.Run(trainer);
    });

    [Fact]
    public async Task Bf16_over_100_steps_ends_within_2_percent_of_the_fp32_loss()
    {
        var fp32 = await Run(Spec("fp32", steps: 100));
        var bf16 = await Run(Spec("bf16", steps: 100));
        Assert.NotEqual(fp32.FinalParameterDigest, bf16.FinalParameterDigest);
        var (reference, mixed) = (fp32.HeldOut[^1].Loss, bf16.HeldOut[^1].Loss);
        Assert.True(Math.Abs(mixed - reference) <= 0.02 * reference, $"held-out loss after 100 steps: bf16 {mixed:F4}, fp32 {reference:F4}");
        Assert.True(reference < fp32.Steps[0].Loss * 0.8, "the fp32 run must have learned something for the comparison to mean anything");
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("tf32")]
    public async Task Each_precision_is_bitwise_reproducible(string precision)
    {
        var first = await Run(Spec(precision));
        var second = await Run(Spec(precision));
        Assert.Equal(first.FinalParameterDigest, second.FinalParameterDigest);
        Assert.Equal(first.Steps.Select(s => s.Loss), second.Steps.Select(s => s.Loss));
    }

    [Fact]
    public async Task Tf32_on_a_cpu_is_fp32()
    {
        Assert.Equal((await Run(Spec("fp32"))).FinalParameterDigest, (await Run(Spec("tf32"))).FinalParameterDigest);
    }

    [Fact]
    public async Task Bf16_computes_in_bf16_and_keeps_weights_gradients_and_moments_in_fp32()
    {
        var runs = await TestSpecs.OnDevice(() => new[] { "fp32", "bf16" }.Select(precision =>
        {
            var spec = Spec(precision);
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var loss = trainer.Step(1).Loss;
            using var scope = NewDisposeScope();
            return (Loss: loss, State: trainer.StateTensors().Select(s => s.Joined().dtype).Distinct().ToList(),
                Gradients: trainer.Model.ParametersByName().Select(p => p.Parameter.grad!.dtype).Distinct().ToList());
        }).ToList());
        var (fp32, bf16) = (runs[0], runs[1]);
        Assert.NotEqual(fp32.Loss, bf16.Loss); // the same weights and data: only bf16 rounding tells them apart
        Assert.InRange(Math.Abs(bf16.Loss / fp32.Loss - 1), 0, 0.01);
        Assert.Equal([ScalarType.Float32], bf16.State);
        Assert.Equal([ScalarType.Float32], bf16.Gradients);
    }
}
