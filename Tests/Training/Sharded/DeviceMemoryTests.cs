using System.Net;
using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Training.Collectives;
using Elastic.Parallelism;

namespace Elastic.Tests.Training.Sharded;

/// <summary>What a rank reports it holds: its tensors counted by kind, the moments falling with the width under ZeRO.</summary>
public sealed class DeviceMemoryTests
{
    // Eight layers: under ZeRO 3 a rank's part of the parameters and the two units it holds gathered (the one running and the
    // next, prefetched) are well under the whole model.
    private static TrainingSpec Spec(int zero) => TestSpecs.Tiny(steps: 1, global: 16, micro: 2, dropout: 0) with
    {
        Model = TestSpecs.Tiny().Model with { Layers = 8 },
        Parallel = new ParallelSpec { Zero = zero },
    };

    [Fact]
    public async Task One_device_holds_four_bytes_per_parameter_and_eight_of_moments()
    {
        var spec = Spec(0);
        var (memory, parameters) = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Elastic.Training.Engine.Trainer(spec, TestSpecs.Corpus(spec));
            trainer.Step(1);
            return (trainer.Memory(replicas: 1), trainer.ParameterCount);
        });

        Assert.Equal(4 * parameters, memory.Parameters);
        Assert.Equal(8 * parameters, memory.OptimizerState);
        // At least the step's sum; the head's leaves over the tied embedding add their own region.
        Assert.True(memory.Gradients >= 4 * parameters, $"{memory.Gradients} gradient bytes for {parameters} parameters");
        Assert.Equal(MemoryEstimate.For(spec).ActivationBytes, memory.ActivationsEstimate);
    }

    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(1, 0.25)]
    [InlineData(2, 0.25)]
    [InlineData(3, 0.25)]
    public async Task Under_zero_each_of_four_replicas_keeps_about_a_quarter_of_the_moments(int zero, double share)
    {
        var spec = Spec(zero);
        await using var plane = new DataPlane(IPAddress.Loopback);
        var ranks = await EngineGrid.Run(plane, spec, ParallelGrid.Of(4, 1, 1), sequenceParallel: true, (_, trainer) =>
        {
            trainer.Step(1);
            return (Memory: trainer.Memory(), Parameters: trainer.Trainer.ParameterCount);
        }, name: $"memory-zero{zero}");

        var whole = 8L * ranks[0].Parameters;
        // Replicated, every replica has all of it; partitioned, the parts add up to one copy.
        Assert.Equal(zero == 0 ? 4 * whole : whole, ranks.Sum(r => r.Memory.OptimizerState));
        // Balanced by whole parameters: the busiest replica within twice its share.
        Assert.All(ranks, r => Assert.True(r.Memory.OptimizerState <= 2 * whole * share, $"{r.Memory.OptimizerState} of {whole}"));
        Assert.All(ranks, r => Assert.True(r.Memory.Staging > 0, "the buffers the all-reduce keeps are staging"));
        // ZeRO 3 keeps only a part of the parameters, plus the largest unit gathered and the next one on the wire.
        var parameters = 4L * ranks[0].Parameters;
        Assert.All(ranks, r => Assert.True(zero == 3 ? r.Memory.Parameters < parameters : r.Memory.Parameters == parameters, $"{r.Memory.Parameters} of {parameters}"));
    }
}
