using System.Diagnostics;
using Elastic.Data;
using Elastic.Jobs;

namespace Elastic.Tests.Data;

/// <summary>
/// The tokenizers a spec names: tiktoken's encodings give the ids OpenAI's tiktoken gives, the shipped byte-level BPE file gives the
/// ids an independent Python BPE gives, every vocabulary is the size the spec validator assumes, and a file that is not a
/// tokenizer is refused naming it.
/// </summary>
public sealed class TokenizerTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-tokenizer-").FullName;

    public static string ShippedBpe => Path.Combine(RepoPaths.Root, "examples", "tokenizer", "kjv-bpe-2k.json");

    [Theory]
    // Published ids (tiktoken's own tests and documentation): "Hello world" and the end-of-text token.
    [InlineData("tiktoken:gpt2", new[] { 15496, 995 }, 50256)]
    [InlineData("tiktoken:cl100k", new[] { 9906, 1917 }, 100257)]
    [InlineData("tiktoken:o200k", new[] { 13225, 2375 }, 199999)]
    public void Tiktoken_encodings_give_tiktokens_ids_and_the_vocabulary_the_validator_assumes(string name, int[] helloWorld, int endOfText)
    {
        var tokenizer = Tokenizers.Create(name);

        Assert.Equal(helloWorld, tokenizer.Encode("Hello world"));
        Assert.Equal(endOfText, tokenizer.EndOfText);
        Assert.Equal(SpecValidator.TokenizerVocabularies[name], tokenizer.VocabSize);
        const string text = "In the beginning — Ἐν ἀρχῇ — 太初 2026!";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
    }

    [Fact]
    public async Task The_shipped_bpe_file_encodes_as_an_independent_python_bpe_does()
    {
        var text = CorpusSource.ReadBundledText("kjv")[50_000..58_000] + " Numbers 1234 and 56, under_scores, emails a@b.c, tabs\tand  double  spaces.\n<|endoftext|>Next.";
        var file = Path.Combine(_folder, "text.txt");
        await File.WriteAllTextAsync(file, text);
        var tokenizer = Tokenizers.Create(ShippedBpe);

        var reference = (await Python(Path.Combine(RepoPaths.Root, "examples", "tokenizer", "bpe.py"), "encode", ShippedBpe, file)).Split(' ').Select(int.Parse);

        Assert.Equal(reference, tokenizer.Encode(text));
        Assert.Equal(2048, tokenizer.VocabSize);
        Assert.Equal(2047, tokenizer.EndOfText);
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.True(tokenizer.Encode(text).Length < text.Length / 3, "a BPE of the corpus' own words compresses it");
    }

    [Theory]
    [InlineData("kjv-spm-bpe-1k.model", "kjv-spm-bpe-1k.model")]
    [InlineData("kjv-spm-unigram-1k.model", "kjv-spm-unigram-1k.model")]
    [InlineData("kjv-spm-unigram-1k.json", "kjv-spm-unigram-1k.model")]
    public void Shipped_sentencepiece_models_encode_and_decode_as_googles_sentencepiece_does(string file, string model)
    {
        // Ids and texts recorded from Google's sentencepiece by examples/tokenizer/spm.py, which also made the files.
        var folder = Path.Combine(RepoPaths.Root, "examples", "tokenizer");
        var expected = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "spm-expected.json")))![model]!.AsArray();
        var tokenizer = Tokenizers.Create(Path.Combine(folder, file));

        Assert.Equal(1000, tokenizer.VocabSize);
        Assert.Equal(2, tokenizer.EndOfText);
        Assert.All(expected, e =>
        {
            var ids = e!["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            Assert.Equal(ids, tokenizer.Encode((string)e["text"]!));
            Assert.Equal((string)e["decoded"]!, tokenizer.Decode(ids));
        });
    }

    [Fact]
    public async Task A_file_that_is_not_a_tokenizer_is_refused_naming_the_file()
    {
        var notJson = Path.Combine(_folder, "broken.json");
        await File.WriteAllTextAsync(notJson, "{ not json");
        var wordPiece = Path.Combine(_folder, "wordpiece.json");
        await File.WriteAllTextAsync(wordPiece, """{ "model": { "type": "WordPiece", "vocab": {} } }""");
        var notProtobuf = Path.Combine(_folder, "spm.model");
        await File.WriteAllBytesAsync(notProtobuf, [0xff, 0xff, 0xff, 0x01, 0x02]);

        Assert.StartsWith($"{notJson}: not a tokenizer", Assert.Throws<InvalidDataException>(() => Tokenizers.Create(notJson)).Message);
        Assert.Contains($"{wordPiece}: model.type: 'WordPiece'", Assert.Throws<InvalidDataException>(() => Tokenizers.Create(wordPiece)).Message);
        Assert.StartsWith($"{notProtobuf}: not a tokenizer", Assert.Throws<InvalidDataException>(() => Tokenizers.Create(notProtobuf)).Message);
        Assert.Contains("not found", Assert.Throws<FileNotFoundException>(() => Tokenizers.Create(Path.Combine(_folder, "absent.json"))).Message);
    }

    [Fact]
    public void A_spec_whose_vocabulary_is_smaller_than_its_tokenizers_is_refused_naming_both()
    {
        var spec = TestSpecs.Tiny() with { Data = new DataSpec { Tokenizer = ShippedBpe } };

        var error = Assert.Single(JobValidation.Validate(spec));

        Assert.Equal("model.vocab", error.Field);
        Assert.Contains("(2048)", error.Message);
        Assert.Empty(JobValidation.Validate(spec with { Model = spec.Model with { Vocab = 2048 } }));
    }

    internal static async Task<string> Python(params string[] args)
    {
        // Debian's interpreter (a python3 earlier on the PATH may lack the packages test.sh installs).
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var (output, error) = (process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"python3 {string.Join(' ', args)} exited {process.ExitCode}: {await error}");
        return (await output).Trim();
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
