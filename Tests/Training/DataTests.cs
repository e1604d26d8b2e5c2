using Elastic.Data;
using Elastic.Jobs;

namespace Elastic.Tests.Training;

public sealed class DataTests
{
    [Fact]
    public void Byte_tokenizer_round_trips_utf8_text()
    {
        var tokenizer = new ByteTokenizer();
        const string text = "In the beginning — Ἐν ἀρχῇ — 太初";
        var ids = tokenizer.Encode(text);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Each_epoch_visits_every_window_once_in_a_seeded_order()
    {
        var tokens = Enumerable.Range(0, 1001).Select(i => i % 256).ToArray();
        var data = new TokenDataset(new InMemoryTokens(tokens), 0, tokens.Length, window: 11, seed: 5);
        Assert.Equal(100, data.Count);
        var epoch0 = Enumerable.Range(0, 100).Select(i => data.WindowOf(i)).ToArray();
        var epoch1 = Enumerable.Range(100, 100).Select(i => data.WindowOf(i)).ToArray();
        Assert.Equal(Enumerable.Range(0, 100), epoch0.Order());
        Assert.Equal(Enumerable.Range(0, 100), epoch1.Order());
        Assert.NotEqual(epoch0, epoch1);
        var again = new TokenDataset(new InMemoryTokens(tokens), 0, tokens.Length, window: 11, seed: 5);
        Assert.Equal(epoch1, Enumerable.Range(100, 100).Select(i => again.WindowOf(i)));
        var otherSeed = new TokenDataset(new InMemoryTokens(tokens), 0, tokens.Length, window: 11, seed: 6);
        Assert.NotEqual(epoch0, Enumerable.Range(0, 100).Select(i => otherSeed.WindowOf(i)));
        // Consecutive windows share their boundary token: inputs and shifted targets cover the stream.
        Assert.Equal(tokens[10], data.WindowTokens(1)[0]);
        Assert.Equal(tokens[10..21], data.WindowTokens(1).ToArray());
    }

    [Fact]
    public void Samples_are_addressed_by_global_index_whatever_the_micro_batch_size()
    {
        var small = new Elastic.Training.Engine.Trainer(TestSpecs.Tiny(global: 16, micro: 2), TestSpecs.Corpus(TestSpecs.Tiny()));
        var large = new Elastic.Training.Engine.Trainer(TestSpecs.Tiny(global: 16, micro: 8), TestSpecs.Corpus(TestSpecs.Tiny()));
        using (small)
        using (large)
        {
            var fromSmall = Enumerable.Range(0, 8).SelectMany(m => small.SamplesOf(3, m));
            var fromLarge = Enumerable.Range(0, 2).SelectMany(m => large.SamplesOf(3, m));
            Assert.Equal(Enumerable.Range(32, 16).Select(i => (long)i), fromSmall);
            Assert.Equal(fromSmall, fromLarge);
        }
    }

    [Fact]
    public void Uint16_token_files_load_little_endian_and_reject_ids_outside_the_vocabulary()
    {
        var path = Path.Combine(Path.GetTempPath(), $"elastic-tokens-{Guid.NewGuid():N}.bin");
        try
        {
            File.WriteAllBytes(path, [0x01, 0x00, 0x34, 0x12, 0xFF, 0x00]);
            Assert.Equal(new[] { 1, 0x1234, 255 }, TestSpecs.All(CorpusSource.Read(new MixtureSource { Source = path, Format = "uint16" }, new ByteTokenizer(), vocab: 0x2000).Tokens));
            var e = Assert.Throws<InvalidDataException>(() => CorpusSource.Read(new MixtureSource { Source = path, Format = "uint16" }, new ByteTokenizer(), vocab: 256));
            Assert.Contains("4660", e.Message);
            Assert.Contains("model.vocab 256", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_corpus_too_small_for_one_window_is_a_spec_error()
    {
        var spec = TestSpecs.Tiny();
        var e = Assert.Throws<SpecValidationException>(() => TokenCorpus.FromTokens(spec, new ByteTokenizer(), new int[40]));
        Assert.Equal("data.source", Assert.Single(e.Errors).Field);
    }
}
