using System.Text.Json.Nodes;
using Elastic.Checkpoints.Stores;
using Elastic.Cli;
using Elastic.Data;
using Elastic.Data.Datasets;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Data;

/// <summary>
/// Tokenized datasets (<c>elastic data prepare</c>): documents in input order, each ended by end-of-text, in shards with document
/// indexes and digests, in a folder or in Azure Blob Storage (Azurite); a job reads one to the same bits as the same tokens in
/// memory; a damaged or missing shard fails the job with the shard named, and an existing dataset is never overwritten.
/// </summary>
public sealed class DatasetTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-dataset-").FullName;
    private static readonly ITokenizer Bpe = Tokenizers.Create(TokenizerTests.ShippedBpe);

    /// <summary>Two text files in a folder (read in name order) and a JSON-lines file of three records.</summary>
    private (string[] Inputs, string[] Documents) Inputs()
    {
        var bible = CorpusSource.ReadBundledText("kjv");
        var folder = Directory.CreateDirectory(Path.Combine(_folder, "texts")).FullName;
        File.WriteAllText(Path.Combine(folder, "b.txt"), bible[20_000..30_000]);
        File.WriteAllText(Path.Combine(folder, "a.txt"), bible[..20_000]);
        var records = new[] { bible[40_000..41_000], bible[50_000..52_000], "short" };
        var jsonl = Path.Combine(_folder, "records.jsonl");
        File.WriteAllLines(jsonl, records.Select(r => new JsonObject { ["body"] = r }.ToJsonString()));
        return ([folder, jsonl], [bible[..20_000], bible[20_000..30_000], .. records]);
    }

    private static async Task<(int Exit, string Output)> Prepare(params string[] args)
    {
        var output = new StringWriter();
        var exit = await ElasticCommandLine.Create().Parse(["data", "prepare", .. args]).InvokeAsync(new() { Output = output, Error = output });
        return (exit, output.ToString());
    }

    [Fact]
    public async Task Prepare_writes_every_document_in_order_with_end_of_text_into_shards_with_indexes()
    {
        var (inputs, documents) = Inputs();
        var destination = Path.Combine(_folder, "dataset");

        var (exit, output) = await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body", "--shard-tokens", "3000"]);

        Assert.True(exit == 0, output);
        var location = StoreLocation.Open(destination);
        var (manifest, tokens) = await DatasetReader.ReadAsync(location);
        var expected = documents.SelectMany(d => Bpe.Encode(d).Append(2047)).ToArray();
        Assert.Equal(expected, tokens);
        Assert.Equal((5L, (long)expected.Length, "kjv-bpe-2k.json", 2), (manifest.Documents, manifest.Tokens, manifest.Tokenizer, manifest.IdBytes));
        Assert.True(manifest.Shards.Count >= 3, $"{manifest.Shards.Count} shards of about 3,000 tokens");
        // Each shard's index: the offset of each of its documents' first token, then its length; shards end at document ends.
        var starts = new List<long>();
        long before = 0;
        foreach (var shard in manifest.Shards)
        {
            var index = await File.ReadAllBytesAsync(Path.Combine(destination, shard.Index));
            var offsets = Enumerable.Range(0, index.Length / 8).Select(i => BitConverter.ToInt64(index, 8 * i)).ToList();
            Assert.Equal(shard.Tokens, offsets[^1]);
            Assert.Equal(2047, tokens[before + shard.Tokens - 1]);
            starts.AddRange(offsets.SkipLast(1).Select(o => before + o));
            before += shard.Tokens;
        }
        Assert.Equal(documents.Select((d, i) => (long)documents.Take(i).Sum(p => Bpe.Encode(p).Length + 1)), starts);
        Assert.Contains("5 documents", output);
    }

    [Fact]
    public async Task A_job_reads_a_dataset_to_the_same_bits_as_the_same_tokens_in_memory()
    {
        var (inputs, _) = Inputs();
        var destination = Path.Combine(_folder, "dataset");
        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body"])).Exit);
        var spec = TestSpecs.Tiny(steps: 3) with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 }, Data = new DataSpec { Source = destination, Tokenizer = TokenizerTests.ShippedBpe } };
        var (_, tokens) = await DatasetReader.ReadAsync(StoreLocation.Open(destination));

        var fromDataset = await Digest(spec, JobValidation.LoadValidated(spec));
        var fromMemory = await Digest(spec, TokenCorpus.FromTokens(spec, Bpe, tokens));

        Assert.Equal(fromMemory, fromDataset);
        var wrongTokenizer = Assert.Single(JobValidation.Validate(spec with { Model = spec.Model with { Vocab = 50304 }, Data = spec.Data with { Tokenizer = "tiktoken:gpt2" } }));
        Assert.Equal("data.tokenizer", wrongTokenizer.Field);
        Assert.Contains("prepared with 'kjv-bpe-2k.json'", wrongTokenizer.Message);
    }

    [Fact]
    public async Task A_damaged_or_missing_shard_is_named_and_an_existing_dataset_is_never_overwritten()
    {
        var (inputs, _) = Inputs();
        var destination = Path.Combine(_folder, "dataset");
        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body", "--shard-tokens", "3000"])).Exit);
        var spec = TestSpecs.Tiny() with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 }, Data = new DataSpec { Source = destination, Tokenizer = TokenizerTests.ShippedBpe } };
        var manifest = await File.ReadAllTextAsync(Path.Combine(destination, DatasetManifest.FileName));

        var (again, output) = await Prepare([.. inputs, "--tokenizer", "byte", "--out", destination, "--field", "body"]);
        Assert.Equal(1, again);
        Assert.Contains("already holds a dataset", output);
        Assert.Equal(manifest, await File.ReadAllTextAsync(Path.Combine(destination, DatasetManifest.FileName)));

        var shard = Path.Combine(destination, "shard-00001.bin");
        var bytes = await File.ReadAllBytesAsync(shard);
        bytes[10] ^= 1;
        await File.WriteAllBytesAsync(shard, bytes);
        var damaged = Assert.Single(JobValidation.Validate(spec));
        Assert.Equal("data.source", damaged.Field);
        Assert.Contains("shard shard-00001.bin does not match its SHA-256", damaged.Message);

        File.Delete(shard);
        Assert.Contains("shard shard-00001.bin is missing", Assert.Single(JobValidation.Validate(spec)).Message);
    }

    [Fact]
    public async Task A_dataset_prepared_into_azure_blob_storage_trains_as_the_same_dataset_on_disk()
    {
        var (inputs, _) = Inputs();
        Environment.SetEnvironmentVariable(StoreLocation.ConnectionVariable, azurite.Azurite.ConnectionString);
        var blob = $"az://datasets-{Guid.NewGuid():N}/kjv/bpe";
        var disk = Path.Combine(_folder, "dataset");

        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", blob, "--field", "body", "--shard-tokens", "3000"])).Exit);
        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", disk, "--field", "body", "--shard-tokens", "3000"])).Exit);

        var spec = TestSpecs.Tiny(steps: 2) with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 }, Data = new DataSpec { Source = blob, Tokenizer = TokenizerTests.ShippedBpe } };
        Assert.Equal(await Digest(spec with { Data = spec.Data with { Source = disk } }, JobValidation.LoadValidated(spec with { Data = spec.Data with { Source = disk } })),
            await Digest(spec, JobValidation.LoadValidated(spec)));
    }

    [Fact]
    public void An_unreachable_blob_source_is_refused_with_the_reason_after_the_stores_retries()
    {
        // Nothing listens on this port: every request is refused, the SDK retries, then the job is refused naming the source.
        Environment.SetEnvironmentVariable(StoreLocation.ConnectionVariable, AzuriteProcess.ConnectionStringFor(AzuriteProcess.FreePorts()));
        var source = "az://datasets/nowhere";
        var spec = TestSpecs.Tiny() with { Data = new DataSpec { Source = source } };

        var error = Assert.Single(JobValidation.Validate(spec));

        Assert.Equal(("data.source", source), (error.Field, error.Value));
        Assert.Contains($"{source}: storage cannot be read", error.Message);
    }

    private static Task<string> Digest(TrainingSpec spec, TokenCorpus corpus) => TestSpecs.OnDevice(() =>
    {
        using var trainer = new Trainer(spec, corpus);
        for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
        return trainer.ParameterDigest();
    });

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
