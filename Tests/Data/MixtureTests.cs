using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Tests.Training;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Data;

/// <summary>
/// Weighted mixtures (data.mixture): which source each global sample comes from is a pure function of the weights (Megatron-LM's
/// greedy blend), each source keeps its own shuffled epochs, a mixed job keeps the one-device bits on other layouts, and a bad
/// source is named by its place in the mixture.
/// </summary>
public sealed class MixtureTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-mixture-").FullName;

    [Fact]
    public void Each_sample_goes_to_the_source_furthest_behind_its_share()
    {
        var blend = new SampleBlend([3, 1]);

        var first = Enumerable.Range(0, 8).Select(i => blend.Of(i)).ToList();
        var many = Enumerable.Range(0, 10_000).Select(i => blend.Of(i).Source).ToList();

        Assert.Equal([(0, 0L), (0, 1L), (1, 0L), (0, 2L), (0, 3L), (0, 4L), (1, 1L), (0, 5L)], first);
        Assert.Equal(2_500, many.Count(s => s == 1));
        // Asked out of order, or by another instance, the same answers.
        Assert.Equal(first[6], new SampleBlend([3, 1]).Of(6));
        Assert.Equal((0, 9_999L), new SampleBlend([1]).Of(9_999));
    }

    private TrainingSpec Mixed(int steps = 2)
    {
        // The bundled Bible and a text of our own (only 'z', 'q' and spaces: no window of the Bible looks like it), one sample in four from it.
        var other = Path.Combine(_folder, "other.txt");
        File.WriteAllText(other, string.Concat(Enumerable.Range(0, 6000).Select(i => i % 7 == 0 ? ' ' : i % 3 == 0 ? 'q' : 'z')));
        return TestSpecs.Tiny(steps: steps, global: 16, micro: 2) with
        {
            Data = new DataSpec { Mixture = [new MixtureSource { Source = "bundled:kjv", Weight = 3 }, new MixtureSource { Source = other, Weight = 1 }] },
        };
    }

    [Fact]
    public async Task A_mixed_job_draws_its_sources_by_weight_and_keeps_the_one_device_bits_on_other_layouts()
    {
        var spec = Mixed() with { Parallel = new ParallelSpec { Tensor = 2, Pipeline = 2 } };
        var corpus = JobValidation.LoadValidated(spec);
        var fromOther = Enumerable.Range(0, 16).Count(i => corpus.TrainSample(i) is var (data, window) && data.WindowTokens(window).ToArray().All(t => t is 'z' or 'q' or ' '));
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, corpus);
            var steps = Enumerable.Range(1, spec.Steps).Select(s => trainer.Step(s)).ToList();
            return (Steps: steps, Digest: trainer.ParameterDigest());
        });

        await using var plane = new DataPlane(IPAddress.Loopback);
        var ranks = await EngineGrid.Run(plane, spec, ParallelGrid.Of(2, 2, 2), sequenceParallel: true, (_, trainer) => EngineGrid.AllSteps(trainer), name: "mixture", corpus: corpus);

        Assert.Equal(4, fromOther);
        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Steps, r.Steps);
            Assert.Equal(reference.Digest, r.Digest);
        });
    }

    [Fact]
    public void A_bad_source_or_weight_is_named_by_its_place_in_the_mixture()
    {
        var spec = Mixed();
        var mixture = spec.Data.Mixture!;

        var errors = JobValidation.Validate(spec with
        {
            Data = spec.Data with { Source = "bundled:other", Mixture = [mixture[0] with { Weight = 0 }, mixture[1] with { Source = Path.Combine(_folder, "absent.txt") }] },
        }).Select(e => (e.Field, e.Message)).ToList();

        Assert.Contains(("data.mixture[0].weight", "must be positive"), errors);
        Assert.Contains(("data.mixture[1].source", "file not found"), errors);
        Assert.Contains(("data.source", "give data.source or data.mixture, not both"), errors);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
