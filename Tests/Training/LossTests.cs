using Elastic.Training.Engine;

namespace Elastic.Tests.Training;

public sealed class LossTests
{
    [Fact]
    public async Task Loss_falls_on_the_bundled_corpus()
    {
        var spec = TestSpecs.Tiny(steps: 40, dropout: 0.0) with { Eval = new() { Every = 0, Batches = 4 } };
        var (report, initialHeldOut) = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var before = trainer.EvaluateHeldOut();
            return (TrainingLoop.Run(trainer), before);
        });
        // ln(256) = 5.55 is the loss of a uniform guess over bytes; 40 steps must learn the byte statistics at least.
        Assert.InRange(initialHeldOut, 5.0, 6.0);
        Assert.True(report.HeldOut[^1].Loss < initialHeldOut - 2.0, $"held-out loss {initialHeldOut:F3} -> {report.HeldOut[^1].Loss:F3}");
        Assert.True(report.Steps[^1].Loss < report.Steps[0].Loss - 2.0, $"training loss {report.Steps[0].Loss:F3} -> {report.Steps[^1].Loss:F3}");
        Assert.True(report.Completed);
        Assert.All(report.Steps, s => Assert.True(double.IsFinite(s.Loss) && double.IsFinite(s.GradNorm)));
    }
}
