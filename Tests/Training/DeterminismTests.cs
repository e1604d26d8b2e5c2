using Elastic.Training.Engine;
using Elastic.Jobs.Reports;

namespace Elastic.Tests.Training;

public sealed class DeterminismTests
{
    private static Task<RunReport> Run(ulong seed) => TestSpecs.OnDevice(() =>
    {
        var spec = TestSpecs.Tiny(steps: 6, dropout: 0.1, seed: seed);
        using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
        return TrainingLoop.Run(trainer);
    });

    [Fact]
    public async Task Two_runs_with_the_same_seed_are_bitwise_identical()
    {
        var first = await Run(seed: 11);
        var second = await Run(seed: 11);
        Assert.Equal(first.FinalParameterDigest, second.FinalParameterDigest);
        Assert.Equal(first.Steps.Select(s => s.Loss), second.Steps.Select(s => s.Loss));
        Assert.Equal(first.Steps.Select(s => s.GradNorm), second.Steps.Select(s => s.GradNorm));
    }

    [Fact]
    public async Task A_different_seed_gives_a_different_model()
    {
        var first = await Run(seed: 11);
        var other = await Run(seed: 12);
        Assert.NotEqual(first.FinalParameterDigest, other.FinalParameterDigest);
    }
}
