using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Resharding;

namespace Elastic.Tests.Checkpoints;

/// <summary>Save in one layout, load in another: every (source, target) pair of row and column splits, and uneven pipeline cuts.</summary>
public sealed class ReshardingTests : IDisposable
{
    private readonly CheckpointFixture _fixture = new();

    public static TheoryData<int, int, int, int> Splits()
    {
        var data = new TheoryData<int, int, int, int>();
        foreach (var saveDim in new[] { 0, 1 })
        foreach (var saveWays in new[] { 1, 2, 4, 8 })
        foreach (var loadDim in new[] { 0, 1 })
        foreach (var loadWays in new[] { 1, 2, 4, 8 })
            data.Add(saveDim, saveWays, loadDim, loadWays);
        return data;
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public async Task A_matrix_saved_split_one_way_loads_split_any_other_way(int saveDim, int saveWays, int loadDim, int loadWays)
    {
        long[] shape = [16, 24];
        var full = CheckpointFixture.Iota(shape);
        var manifest = await _fixture.Save("h.0.mlp.c_fc.weight", full, shape, CheckpointFixture.Even(shape, saveDim, saveWays));
        foreach (var region in CheckpointFixture.Even(shape, loadDim, loadWays))
            Assert.Equal(CheckpointFixture.Slice(full, shape, region), await _fixture.Load(manifest, "h.0.mlp.c_fc.weight", region));
    }

    [Theory]
    [InlineData(new long[] { 1, 3, 2 }, new long[] { 6 })]
    [InlineData(new long[] { 6 }, new long[] { 2, 1, 3 })]
    [InlineData(new long[] { 3, 3 }, new long[] { 1, 4, 1 })]
    [InlineData(new long[] { 2, 2, 2 }, new long[] { 5, 1 })]
    public async Task Uneven_pipeline_cuts_of_stacked_layers_reshard(long[] saved, long[] loaded)
    {
        long[] shape = [6, 4, 5]; // six layers of a 4 x 5 parameter, cut into pipeline stages of uneven depth
        var full = CheckpointFixture.Iota(shape);
        var manifest = await _fixture.Save("layers", full, shape, CheckpointFixture.Cut(shape, 0, saved));
        foreach (var region in CheckpointFixture.Cut(shape, 0, loaded))
            Assert.Equal(CheckpointFixture.Slice(full, shape, region), await _fixture.Load(manifest, "layers", region));
        // And a box that crosses every saved cut along all three dimensions.
        var box = new TensorRegion([1, 1, 2], [4, 2, 3]);
        Assert.Equal(CheckpointFixture.Slice(full, shape, box), await _fixture.Load(manifest, "layers", box));
    }

    [Fact]
    public void Byte_runs_are_one_run_for_row_splits_and_one_per_row_for_column_splits()
    {
        var chunk = TensorRegion.Whole([16, 24]);
        Assert.Equal([(4L * 24 * 4, 4L * 24 * 4)], RegionCopy.ByteRuns(chunk, new TensorRegion([4, 0], [4, 24]), 4));
        var columns = RegionCopy.ByteRuns(chunk, new TensorRegion([0, 6], [16, 6]), 4);
        Assert.Equal(16, columns.Count);
        Assert.All(columns, (run, row) => Assert.Equal(((row * 24 + 6) * 4L, 24L), run));
    }

    [Fact]
    public async Task A_region_no_saved_chunk_covers_fails_naming_the_tensor()
    {
        long[] shape = [8, 8];
        var full = CheckpointFixture.Iota(shape);
        var manifest = await _fixture.Save("w", full, shape, [new TensorRegion([0, 0], [4, 8])]);
        var error = await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "w", TensorRegion.Whole(shape)));
        Assert.Contains("'w' cover 32 of the 64", error.Message);
        await Assert.ThrowsAsync<CheckpointCorruptException>(() => _fixture.Load(manifest, "missing", TensorRegion.Whole(shape)));
    }

    public void Dispose() => _fixture.Dispose();
}
