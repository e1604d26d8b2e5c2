using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

public sealed class CausalMaskingTests
{
    [Fact]
    public async Task Changing_future_tokens_leaves_earlier_logits_unchanged()
    {
        var (earlierDiff, laterDiff) = await TestSpecs.OnDevice(() =>
        {
            using var model = new DecoderModel(TestSpecs.Tiny(dropout: 0).Model, seed: 3);
            model.Training = false;
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var tokens = randint(0, 256, [2, 32], dtype: ScalarType.Int64, generator: new Generator(5, CPU));
            var changed = tokens.clone();
            changed[.., 20..] = randint(0, 256, [2, 12], dtype: ScalarType.Int64, generator: new Generator(6, CPU));
            var before = model.forward(tokens);
            var after = model.forward(changed);
            var earlier = (before[.., ..20] - after[.., ..20]).abs().max().item<float>();
            var later = (before[.., 20..] - after[.., 20..]).abs().max().item<float>();
            return (earlier, later);
        });
        Assert.True(earlierDiff <= 1e-6f, $"logits before position 20 changed by {earlierDiff}");
        Assert.True(laterDiff > 1e-3f, "changing tokens from position 20 on must change the logits from there on");
    }
}
