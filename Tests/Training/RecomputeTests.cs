using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Training;

/// <summary>
/// Activation recomputation changes what is kept for backward, never the result: selective (the attention core) and full
/// (each layer from its input) end with the digest of none, with dropout on, alone and under tensor, sequence and pipeline
/// parallelism and ZeRO.
/// </summary>
public sealed class RecomputeTests
{
    private static TrainingSpec Spec(string recompute, int pipeline = 1, int tensor = 1, int zero = 0) =>
        TestSpecs.Tiny(steps: 3, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4 },
            Runtime = new RuntimeSpec { Recompute = recompute },
            Parallel = new ParallelSpec { Pipeline = pipeline, Tensor = tensor, Zero = zero },
        };

    [Theory]
    [InlineData("selective")]
    [InlineData("full")]
    public async Task Recomputing_on_one_device_gives_the_losses_and_digest_of_keeping_everything(string recompute)
    {
        var reference = await TestSpecs.OneDeviceSteps(Spec("none"));

        var recomputed = await TestSpecs.OneDeviceSteps(Spec(recompute));

        Assert.Equal(reference.Steps, recomputed.Steps);
        Assert.Equal(reference.Digest, recomputed.Digest);
    }

    [Theory]
    [InlineData("full", 1, 1, 2, 0)]
    [InlineData("selective", 1, 1, 2, 0)]
    [InlineData("full", 1, 2, 1, 0)]
    [InlineData("full", 2, 1, 1, 2)]
    public async Task Recomputing_under_parallel_layouts_gives_the_one_device_digest(string recompute, int dp, int pp, int tp, int zero)
    {
        var reference = await TestSpecs.ReferenceDigest(Spec("none"));
        var spec = Spec(recompute, pp, tp, zero);
        await using var plane = new DataPlane(IPAddress.Loopback);

        var digests = await EngineGrid.Run(plane, spec, ParallelGrid.Of(dp, pp, tp), sequenceParallel: true, (_, trainer) =>
        {
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        }, name: $"recompute-{recompute}-{dp}x{pp}x{tp}");

        Assert.All(digests, d => Assert.Equal(reference, d));
    }
}
