using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;

namespace Elastic.Tests.Checkpoints;

/// <summary>Corrupt, truncated or missing data fails closed and names the chunk; writes are create-only and fenced by generation.</summary>
public sealed class IntegrityTests : IDisposable
{
    private readonly CheckpointFixture _fixture = new();
    private static readonly long[] Shape = [32, 16];

    private Task<CheckpointManifest> SaveTwoChunks() =>
        _fixture.Save("wte.weight", CheckpointFixture.Iota(Shape), Shape, CheckpointFixture.Even(Shape, 0, 2));

    private string PathOf(string blob) => Path.Combine(_fixture.Folder, blob.Replace('/', Path.DirectorySeparatorChar));

    [Fact]
    public async Task A_flipped_byte_fails_the_load_naming_the_chunk_and_leaves_other_blocks_readable()
    {
        var manifest = await SaveTwoChunks();
        var chunk = manifest.Chunks[1];
        var file = PathOf(chunk.File);
        var bytes = await File.ReadAllBytesAsync(file);
        bytes[chunk.ByteOffset + 100] ^= 0x40; // inside block 1 of chunk 1 (64-byte blocks)
        await File.WriteAllBytesAsync(file, bytes);

        var error = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "wte.weight", TensorRegion.Whole(Shape)));
        Assert.Contains("wte.weight", error.Message);
        Assert.Contains(chunk.File, error.Message);
        Assert.Contains("block 1", error.Message);
        // Block-level digests let a reader that needs only intact blocks go on.
        var intact = new TensorRegion([16, 0], [1, 16]); // the first row of chunk 1: block 0
        Assert.Equal(CheckpointFixture.Slice(CheckpointFixture.Iota(Shape), Shape, intact), await _fixture.Load(manifest, "wte.weight", intact));
    }

    [Fact]
    public async Task Truncated_and_missing_chunk_files_fail_closed()
    {
        var manifest = await SaveTwoChunks();
        var file = PathOf(manifest.Chunks[1].File);
        var bytes = await File.ReadAllBytesAsync(file);
        await File.WriteAllBytesAsync(file, bytes[..^10]);
        var truncated = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "wte.weight", TensorRegion.Whole(Shape)));
        Assert.Contains("truncated", truncated.Message);

        File.Delete(file);
        var missing = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "wte.weight", TensorRegion.Whole(Shape)));
        Assert.Contains("missing", missing.Message);
        Assert.Contains(manifest.Chunks[1].File, missing.Message);
    }

    [Fact]
    public async Task Of_eight_racing_create_only_writers_exactly_one_wins()
    {
        var store = _fixture.Store;
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            try
            {
                await store.PutCreateOnlyAsync("race/manifest.json", new[] { (byte)i });
                return true;
            }
            catch (BlobAlreadyExistsException)
            {
                return false;
            }
        }));
        Assert.Single(results, won => won);
        var winner = Array.IndexOf(results, true);
        Assert.Equal([(byte)winner], (await store.GetVersionedAsync("race/manifest.json"))!.Content);
    }

    [Fact]
    public async Task A_stale_generation_cannot_commit_and_latest_stays_put()
    {
        long[] shape = [4, 4];
        var full = CheckpointFixture.Iota(shape);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 10, generation: 2);
        var stale = await Assert.ThrowsAsync<StaleGenerationException>(() => _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 12, generation: 1));
        Assert.Contains("generation 2", stale.Message);
        var latest = await new CheckpointReader(_fixture.Store, _fixture.Layout).LatestAsync();
        Assert.Equal((10L, 2), (latest!.Step, latest.Generation));
        Assert.False(File.Exists(PathOf(_fixture.Layout.Manifest(12, 1))), "a stale writer's manifest must not exist");
    }

    [Fact]
    public async Task Two_generations_committing_at_once_leave_latest_at_the_newer_one()
    {
        long[] shape = [4, 4];
        var full = CheckpointFixture.Iota(shape);
        var outcomes = await Task.WhenAll(new[] { 1, 2 }.Select(async generation =>
        {
            try
            {
                await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 5, generation: generation);
                return true;
            }
            catch (StaleGenerationException)
            {
                return false;
            }
        }));
        Assert.True(outcomes[1], "the newer generation always commits");
        var latest = await new CheckpointReader(_fixture.Store, _fixture.Layout).LatestAsync();
        Assert.Equal(2, latest!.Generation);
    }

    [Fact]
    public async Task The_checkpoint_of_a_step_is_the_one_of_its_newest_generation_compared_as_numbers()
    {
        long[] shape = [2, 2];
        var full = CheckpointFixture.Iota(shape);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 5, generation: 9);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 5, generation: 10);
        var reader = new CheckpointReader(_fixture.Store, _fixture.Layout);
        var found = await reader.FindAsync(5);
        Assert.Equal(10, found!.Value.Manifest.Generation);
        Assert.Null(await reader.FindAsync(6));
        Assert.Equal(found.Value.Name, (await reader.FindAsync(null))!.Value.Name);
    }

    [Fact]
    public async Task A_resume_takes_the_newest_checkpoint_within_the_steps_on_record_not_the_latest_past_them()
    {
        long[] shape = [2, 2];
        var full = CheckpointFixture.Iota(shape);
        foreach (var step in new[] { 10, 20, 40 }) await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: step);
        var reader = new CheckpointReader(_fixture.Store, _fixture.Layout);

        Assert.Equal(40, (await reader.FindAsync(null))!.Value.Manifest.Step);
        Assert.Equal(20, (await reader.NewestAtMostAsync(30))!.Value.Manifest.Step);
        Assert.Equal(40, (await reader.NewestAtMostAsync(40))!.Value.Manifest.Step);
        Assert.Null(await reader.NewestAtMostAsync(9));
    }

    [Fact]
    public async Task A_damaged_latest_pointer_or_manifest_fails_closed_naming_the_blob_and_the_older_checkpoints_stay_readable()
    {
        await SaveTwoChunks();
        var newest = await _fixture.Save("wte.weight", CheckpointFixture.Iota(Shape), Shape, CheckpointFixture.Even(Shape, 0, 2), step: 2);
        var reader = new CheckpointReader(_fixture.Store, _fixture.Layout);
        var manifest = (await reader.LatestAsync())!.Manifest;

        File.WriteAllText(PathOf(_fixture.Layout.Latest), "{\"step\": 2, \"generation\": ");
        var pointer = await Assert.ThrowsAsync<CheckpointCorruptException>(() => reader.LatestAsync());
        Assert.Contains($"{_fixture.Layout.Latest} is not a valid latest pointer", pointer.Message);

        var bytes = File.ReadAllBytes(PathOf(manifest));
        File.WriteAllBytes(PathOf(manifest), bytes[..(bytes.Length / 2)]);
        var damaged = await Assert.ThrowsAsync<CheckpointCorruptException>(() => reader.ReadManifestAsync(manifest));
        Assert.Contains($"manifest {manifest} is not valid", damaged.Message);
        // The older checkpoint is listed and loads as it was.
        var older = (await reader.CommittedAsync()).Single(c => c.Step == 1);
        var region = CheckpointFixture.Even(Shape, 0, 2)[1];
        Assert.Equal(CheckpointFixture.Slice(CheckpointFixture.Iota(Shape), Shape, region), await _fixture.Load(await reader.ReadManifestAsync(older.Manifest), "wte.weight", region));
        Assert.Equal(2, newest.Step);
    }

    [Fact]
    public async Task Chunks_without_a_manifest_are_not_a_checkpoint()
    {
        var writer = new CheckpointWriter(_fixture.Store, _fixture.Layout);
        await writer.WriteChunksAsync(3, 1, "0", [ShardedTensor.Whole("w", "F32", [2], new byte[8])]);
        Assert.Null(await new CheckpointReader(_fixture.Store, _fixture.Layout).LatestAsync());
        var error = await Assert.ThrowsAsync<ArgumentException>(() => writer.WriteChunksAsync(3, 1, "1", [ShardedTensor.Whole("w", "F32", [3], new byte[8])]));
        Assert.Contains("expected 12", error.Message);
    }

    [Fact]
    public async Task Chunk_files_are_standard_safetensors()
    {
        var manifest = await SaveTwoChunks();
        var entries = Safetensors.Read(await File.ReadAllBytesAsync(PathOf(manifest.Chunks[0].File)));
        var entry = Assert.Single(entries);
        Assert.Equal("F32", entry.DType);
        Assert.Equal([16L, 16], entry.Shape);
        Assert.Equal(CheckpointFixture.Iota(Shape)[..256], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(entry.Data.Span).ToArray());
    }

    public void Dispose() => _fixture.Dispose();
}
