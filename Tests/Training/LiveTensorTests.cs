using Elastic.Training.Engine;
using TorchSharp;

namespace Elastic.Tests.Training;

public sealed class LiveTensorTests
{
    [Fact]
    public async Task Fifty_steps_leave_no_more_live_tensors_than_one()
    {
        var (afterWarmup, afterFifty) = await TestSpecs.OnDevice(() =>
        {
            var spec = TestSpecs.Tiny(steps: 60, dropout: 0.1);
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            // Warm-up steps create the optimizer moments and the pooled gradient buffers once.
            for (var step = 1; step <= 5; step++) trainer.Step(step);
            var warm = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (var step = 6; step <= 55; step++) trainer.Step(step);
            trainer.EvaluateHeldOut();
            return (warm, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        });
        Assert.True(afterWarmup > 0, "the statistics must see the model's tensors");
        Assert.Equal(afterWarmup, afterFifty);
    }
}
