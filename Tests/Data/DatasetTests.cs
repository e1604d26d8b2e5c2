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
/// memory, a block at a time and ahead of its steps; a damaged block fails the step that reads it with the shard and block named,
/// a missing shard is refused when the job is admitted, and an existing dataset is never overwritten.
/// </summary>
[Collection(StorageEnvironment.Name)]
public sealed class DatasetTests(AzuriteFixture azurite) : IDisposable
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

        var (exit, output) = await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body", "--shard-tokens", "3000", "--block-tokens", "700"]);

        Assert.True(exit == 0, output);
        var (manifest, tokens) = await ReadAll(destination);
        var expected = documents.SelectMany(d => Bpe.Encode(d).Append(2047)).ToArray();
        Assert.Equal(expected, tokens);
        Assert.Equal((5L, (long)expected.Length, "kjv-bpe-2k.json", 2, 700L), (manifest.Documents, manifest.Tokens, manifest.Tokenizer, manifest.IdBytes, manifest.BlockTokens));
        Assert.True(manifest.Shards.Count >= 3, $"{manifest.Shards.Count} shards of about 3,000 tokens");
        // Each block of 700 ids (1,400 bytes) carries the SHA-256 of its own bytes: the unit a job fetches and checks.
        foreach (var shard in manifest.Shards)
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(destination, shard.Name));
            Assert.Equal(bytes.Chunk(1400).Select(b => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(b))), shard.BlockSha256);
        }
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
        // Blocks of 50 ids in shards of about 3,000: windows of 33 ids cross blocks and shards.
        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body", "--shard-tokens", "3000", "--block-tokens", "50"])).Exit);
        var spec = TestSpecs.Tiny(steps: 3) with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 }, Data = new DataSpec { Source = destination, Tokenizer = TokenizerTests.ShippedBpe } };
        var (_, tokens) = await ReadAll(destination);

        var fromDataset = await Digest(spec, JobValidation.LoadValidated(spec));
        var fromMemory = await Digest(spec, TokenCorpus.FromTokens(spec, Bpe, tokens));

        Assert.Equal(fromMemory, fromDataset);
        var wrongTokenizer = Assert.Single(JobValidation.Validate(spec with { Model = spec.Model with { Vocab = 50304 }, Data = spec.Data with { Tokenizer = "tiktoken:gpt2" } }));
        Assert.Equal("data.tokenizer", wrongTokenizer.Field);
        Assert.Contains("prepared with 'kjv-bpe-2k.json'", wrongTokenizer.Message);
    }

    [Fact]
    public async Task A_damaged_block_fails_the_step_that_reads_it_before_any_update_and_a_missing_shard_is_refused_at_admission()
    {
        var (inputs, _) = Inputs();
        var destination = Path.Combine(_folder, "dataset");
        Assert.Equal(0, (await Prepare([.. inputs, "--tokenizer", TokenizerTests.ShippedBpe, "--out", destination, "--field", "body", "--shard-tokens", "3000", "--block-tokens", "200"])).Exit);
        var spec = TestSpecs.Tiny() with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 }, Data = new DataSpec { Source = destination, Tokenizer = TokenizerTests.ShippedBpe } };
        var manifest = await File.ReadAllTextAsync(Path.Combine(destination, DatasetManifest.FileName));

        var (again, output) = await Prepare([.. inputs, "--tokenizer", "byte", "--out", destination, "--field", "body"]);
        Assert.Equal(1, again);
        Assert.Contains("already holds a dataset", output);
        Assert.Equal(manifest, await File.ReadAllTextAsync(Path.Combine(destination, DatasetManifest.FileName)));

        // The job starts (only the manifest and a listing are read); then the block its first sample reads from is damaged.
        var dataset = await DatasetTokens.OpenAsync(StoreLocation.Open(destination), 2048, new BlockCache(1 << 20));
        var corpus = TokenCorpus.FromSource(spec, Bpe, dataset);
        var (_, window) = corpus.TrainSample(0);
        var (shard, block) = BlockOf(dataset.Manifest, (long)window * spec.Model.Context);
        var path = Path.Combine(destination, shard.Name);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[block * 200 * 2 + 1] ^= 1;
        await File.WriteAllBytesAsync(path, bytes);

        var (before, error, after) = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, corpus);
            var digest = trainer.ParameterDigest();
            var e = Assert.Throws<InvalidDataException>(() => trainer.Step(1));
            return (digest, e.Message, trainer.ParameterDigest());
        });
        Assert.Contains($"shard {shard.Name} block {block} ", error);
        Assert.Contains("does not match its SHA-256", error);
        Assert.Equal(before, after);
        // The other blocks still read: the check is per block.
        var neighbour = block == 0 ? 1 : block - 1;
        var ids = new int[10];
        dataset.Read(dataset.Manifest.Shards.TakeWhile(s => s != shard).Sum(s => s.Tokens) + neighbour * 200, ids);

        File.Delete(path);
        var missing = Assert.Single(JobValidation.Validate(spec));
        Assert.Equal("data.source", missing.Field);
        Assert.Contains($"shard {shard.Name} is missing", missing.Message);
    }

    [Fact]
    public async Task A_step_asks_for_its_own_and_the_next_steps_blocks_at_once_and_the_cache_stays_within_its_bound()
    {
        var store = new RecordingStore();
        var location = new StoreLocation(store, "", "memory");
        var text = CorpusSource.ReadBundledText("kjv")[..60_000];
        await new DatasetWriter(location, Bpe, shardTokens: 3000, blockTokens: 64).WriteAsync(text.Split("\n\n"), threads: 2);
        var cache = new BlockCache(40 * 64 * sizeof(int));
        var dataset = await DatasetTokens.OpenAsync(location, 2048, cache);
        var spec = TestSpecs.Tiny(steps: 4) with { Model = TestSpecs.Tiny().Model with { Vocab = 2048 } };
        var corpus = TokenCorpus.FromSource(spec, Bpe, dataset);

        var wanted = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, corpus);
            trainer.Step(1);
            // Step 2's blocks, from the samples' addresses alone.
            return Enumerable.Range(0, trainer.MicroBatchesPerStep).SelectMany(m => trainer.SamplesOf(2, m)).Select(corpus.TrainSample)
                .SelectMany(s => new[] { (long)s.Window * spec.Model.Context, (long)s.Window * spec.Model.Context + spec.Model.Context })
                .Select(p => BlockOf(dataset.Manifest, p)).Select(b => (b.Shard.Name, (long)b.Block * 64 * 2)).ToHashSet();
        });

        // The fetches run in the background; each was asked for during step 1.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!wanted.IsSubsetOf(store.Reads) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Subset(store.Reads.ToHashSet(), wanted);
        Assert.InRange(cache.Bytes, 1, cache.CapacityBytes);
    }

    /// <summary>The shard and block that hold dataset position <paramref name="position"/>.</summary>
    private static (DatasetShard Shard, int Block) BlockOf(DatasetManifest manifest, long position)
    {
        foreach (var shard in manifest.Shards)
        {
            if (position < shard.Tokens) return (shard, (int)(position / manifest.BlockTokensOf(shard)));
            position -= shard.Tokens;
        }
        throw new ArgumentOutOfRangeException(nameof(position));
    }

    private static async Task<(DatasetManifest Manifest, int[] Tokens)> ReadAll(string location)
    {
        var dataset = await DatasetTokens.OpenAsync(StoreLocation.Open(location), 2048, new BlockCache(1 << 20));
        return (dataset.Manifest, TestSpecs.All(dataset));
    }

    /// <summary>Blobs in memory, and every range read of them (blob name, offset).</summary>
    private sealed class RecordingStore : IBlobStore
    {
        private readonly MemoryBlobStore _inner = new();
        private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, long), bool> _reads = new();

        public IReadOnlyCollection<(string Name, long Offset)> Reads => _reads.Keys.ToList();
        public string Location => _inner.Location;
        public Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default) => _inner.PutCreateOnlyAsync(name, content, cancellation);

        public Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default)
        {
            _reads[(name, offset)] = true;
            return _inner.GetRangeAsync(name, offset, length, cancellation);
        }

        public Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default) => _inner.GetVersionedAsync(name, cancellation);
        public Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default) => _inner.TrySwapAsync(name, content, expectedVersion, cancellation);
        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellation = default) => _inner.ListAsync(prefix, cancellation);
        public Task DeleteAsync(string name, CancellationToken cancellation = default) => _inner.DeleteAsync(name, cancellation);
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
