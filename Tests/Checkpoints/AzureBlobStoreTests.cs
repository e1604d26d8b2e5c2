using Azure.Storage.Blobs;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;

namespace Elastic.Tests.Checkpoints;

/// <summary>The checkpoint store contract against the real Azure Blob API (a private Azurite), not the local directory.</summary>
public sealed class AzureBlobStoreTests : IClassFixture<AzuriteFixture>, IDisposable
{
    private readonly BlobContainerClient _container;
    private readonly CheckpointFixture _fixture;

    public AzureBlobStoreTests(AzuriteFixture azurite)
    {
        // A container of its own per test.
        _container = new BlobContainerClient(azurite.Azurite.ConnectionString, $"ckpt-{Guid.NewGuid():N}");
        _fixture = new CheckpointFixture(new AzureBlobStore(_container));
    }

    public void Dispose() => _fixture.Dispose();

    [Theory]
    [InlineData(0, 4, 1, 8)]
    [InlineData(1, 8, 0, 2)]
    [InlineData(0, 1, 0, 4)]
    public async Task Resharding_loads_from_blob_storage_with_ranged_reads(int saveDim, int saveWays, int loadDim, int loadWays)
    {
        long[] shape = [16, 24];
        var full = CheckpointFixture.Iota(shape);
        var manifest = await _fixture.Save("w", full, shape, CheckpointFixture.Even(shape, saveDim, saveWays));
        foreach (var region in CheckpointFixture.Even(shape, loadDim, loadWays))
            Assert.Equal(CheckpointFixture.Slice(full, shape, region), await _fixture.Load(manifest, "w", region));
        var latest = await new CheckpointReader(_fixture.Store, _fixture.Layout).LatestAsync();
        Assert.Equal(manifest.Step, latest!.Step);
    }

    [Fact]
    public async Task A_corrupted_or_deleted_chunk_blob_fails_closed_naming_the_chunk()
    {
        long[] shape = [32, 16];
        var manifest = await _fixture.Save("wte.weight", CheckpointFixture.Iota(shape), shape, CheckpointFixture.Even(shape, 0, 2));
        var chunk = manifest.Chunks[0];
        var blob = _container.GetBlobClient(chunk.File);
        var bytes = (await blob.DownloadContentAsync()).Value.Content.ToArray();
        bytes[chunk.ByteOffset + 5] ^= 1;
        await blob.UploadAsync(BinaryData.FromBytes(bytes), overwrite: true);
        var corrupt = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "wte.weight", TensorRegion.Whole(shape)));
        Assert.Contains(chunk.File, corrupt.Message);
        Assert.Contains("SHA-256", corrupt.Message);

        await blob.DeleteAsync();
        var missing = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "wte.weight", TensorRegion.Whole(shape)));
        Assert.Contains("missing", missing.Message);
    }

    [Fact]
    public async Task Create_only_and_compare_and_swap_hold_under_races()
    {
        var store = _fixture.Store;
        var created = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            try
            {
                await store.PutCreateOnlyAsync("race/blob", new[] { (byte)i });
                return true;
            }
            catch (BlobAlreadyExistsException)
            {
                return false;
            }
        }));
        Assert.Single(created, won => won);

        var start = await store.GetVersionedAsync("race/blob");
        var swapped = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => store.TrySwapAsync("race/blob", new[] { (byte)(100 + i) }, start!.Version)));
        Assert.Single(swapped, won => won);
        Assert.False(await store.TrySwapAsync("race/blob", new byte[1], start!.Version), "a stale version must not swap");
        Assert.False(await store.TrySwapAsync("race/blob", new byte[1], expectedVersion: null), "create-if-absent must fail on an existing blob");
    }

    [Fact]
    public async Task A_stale_generation_is_refused_by_blob_storage_too()
    {
        long[] shape = [4, 4];
        var full = CheckpointFixture.Iota(shape);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 8, generation: 3);
        await Assert.ThrowsAsync<StaleGenerationException>(() => _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 9, generation: 2));
        var latest = await new CheckpointReader(_fixture.Store, _fixture.Layout).LatestAsync();
        Assert.Equal((8L, 3), (latest!.Step, latest.Generation));
    }
}
