using Elastic.Data;
using Elastic.Training.Model;
using Elastic.Training.Sampling;

namespace Elastic.Tests.Training;

public sealed class SamplingTests
{
    [Fact]
    public async Task Sampling_continues_the_prompt_reproducibly_for_a_seed()
    {
        var (a, b, c) = await TestSpecs.OnDevice(() =>
        {
            using var model = new DecoderModel(TestSpecs.Tiny().Model, seed: 1);
            var tokenizer = new ByteTokenizer();
            return (TextSampler.Sample(model, tokenizer, "And God said", 50, seed: 3),
                    TextSampler.Sample(model, tokenizer, "And God said", 50, seed: 3),
                    TextSampler.Sample(model, tokenizer, "And God said", 50, seed: 4));
        });
        Assert.StartsWith("And God said", a);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }
}
