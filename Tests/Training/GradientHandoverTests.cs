using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

/// <summary>
/// What the data-parallel reduction overlapped with backward rests on: the block's last backward hands each unit's runs of the
/// flat gradient over as soon as the unit's backward is done, and at that moment every piece's sum of those runs already holds
/// its final bits (the block's tree sum), so a replica may reduce them while the layers below are still in backward.
/// </summary>
public sealed class GradientHandoverTests
{
    [Theory]
    [InlineData(true, "none")]
    [InlineData(false, "none")]
    [InlineData(true, "full")]
    [InlineData(true, "selective")]
    public async Task Each_units_gradients_are_handed_over_during_the_last_backward_holding_their_final_bits(bool tied, string recompute)
    {
        // Six micro-batches as pieces [0, 4) and [4, 6): the last leaf's sum is added into its left sibling run by run.
        var spec = TestSpecs.Tiny(steps: 3, global: 12, micro: 2) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 3, TiedEmbeddings = tied },
            Runtime = new RuntimeSpec { Recompute = recompute },
        };
        (int, int)[] pieces = [(0, 4), (4, 2)];
        var (matches, tiled, units) = await TestSpecs.OnDevice(() =>
        {
            using var reference = new Trainer(spec, TestSpecs.Corpus(spec));
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            var expected = pieces.Select(_ => reference.RentGradient()).ToList();
            reference.AccumulatePieces(2, pieces, expected);
            var targets = pieces.Select(_ => trainer.RentGradient()).ToList();
            var snapshots = new List<(long Offset, long Length, Tensor[] Values)>();
            trainer.AccumulatePieces(2, pieces, targets, ready: (offset, length) =>
                snapshots.Add((offset, length, [.. targets.Select(t => t.narrow(0, offset, length).clone().DetachFromDisposeScope())])));

            var matches = snapshots.All(s => s.Values.Zip(expected).All(p => p.First.bytes.SequenceEqual(p.Second.narrow(0, s.Offset, s.Length).bytes)));
            var covered = snapshots.OrderBy(s => s.Offset).Aggregate((End: 0L, Tiled: true), (a, s) => (s.Offset + s.Length, a.Tiled && s.Offset == a.End));
            return (matches, covered.Tiled && covered.End == expected[0].numel(), snapshots.Select(s => UnitAt(trainer, s.Offset)).Distinct().ToList());
        });

        Assert.True(tiled, "the runs handed over do not tile the flat gradient exactly once");
        Assert.True(matches, "a run was handed over before every piece's sum of it held the block's final bits");
        // The head and each layer as their backward finished, top down; the embeddings (no unit input takes a gradient) after it.
        Assert.Equal(["head", "h.2", "h.1", "h.0", "embedding"], units);
    }

    /// <summary>The unit whose backward finishes the gradient at <paramref name="offset"/> of the whole model's flat buffer.</summary>
    private static string UnitAt(Trainer trainer, long offset)
    {
        var model = trainer.Model;
        // The flat buffer: every parameter in name order, then a tied head's leaves over the token embedding.
        var slices = model.ParametersByName().Select(p => (p.Name, Length: p.Parameter.numel()))
            .Concat(model.TiedHeadLeaves().Select((l, i) => ($"{DecoderModel.TiedHeadPrefix}wte.weight#{i}", l.HeadLeaf.numel())));
        var at = 0L;
        foreach (var (name, length) in slices)
        {
            if (offset < at + length)
                return new[] { "head" }.Concat(Enumerable.Range(0, model.Spec.Layers).Select(l => $"h.{l}")).FirstOrDefault(u => DecoderModel.Completes(u, name)) ?? "embedding";
            at += length;
        }
        throw new ArgumentOutOfRangeException(nameof(offset), offset, "past the flat buffer");
    }
}
