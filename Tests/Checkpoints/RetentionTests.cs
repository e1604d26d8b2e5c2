using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;

namespace Elastic.Tests.Checkpoints;

public sealed class RetentionTests : IDisposable
{
    private readonly CheckpointFixture _fixture = new();

    [Fact]
    public async Task Retention_keeps_the_last_k_and_every_nth_and_removes_orphans_but_not_writes_in_flight()
    {
        long[] shape = [4, 4];
        var full = CheckpointFixture.Iota(shape);
        for (var step = 1; step <= 10; step++)
            await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: step, generation: 1);
        var writer = new CheckpointWriter(_fixture.Store, _fixture.Layout);
        await writer.WriteChunksAsync(4, 0, "0", [ShardedTensor.Whole("w", "F32", [1], new byte[4])]);  // a writer that died at step 4
        await writer.WriteChunksAsync(11, 1, "0", [ShardedTensor.Whole("w", "F32", [1], new byte[4])]); // a save still in flight

        var result = await new CheckpointRetention(_fixture.Store, _fixture.Layout).ApplyAsync(keepLast: 3, keepEvery: 5);

        Assert.Equal(new[] { 10L, 9, 8, 5 }.Select(s => _fixture.Layout.Folder(s, 1)), result.Kept);
        Assert.Equal(new[] { 7L, 6, 4, 3, 2, 1 }.Select(s => _fixture.Layout.Folder(s, 1)), result.Removed);
        Assert.Equal([_fixture.Layout.Folder(4, 0)], result.OrphansRemoved);
        var left = new List<string>();
        await foreach (var blob in _fixture.Store.ListAsync(_fixture.Layout.Root + "/")) left.Add(blob);
        Assert.Contains(_fixture.Layout.ChunkFile(11, 1, "0"), left);
        Assert.DoesNotContain(left, b => b.StartsWith(_fixture.Layout.Folder(7, 1), StringComparison.Ordinal));
        // What was kept still loads.
        var reader = new CheckpointReader(_fixture.Store, _fixture.Layout);
        var manifest = await reader.ReadManifestAsync(_fixture.Layout.Manifest(5, 1));
        Assert.Equal(full, await _fixture.Load(manifest, "w", TensorRegion.Whole(shape)));
    }

    [Fact]
    public async Task A_checkpoint_marked_damaged_is_not_committed_does_not_count_among_the_last_k_and_goes_once_latest_moves_past_it()
    {
        // Found by the chaos soak: two damaged checkpoints of one step counted as the last two kept, and retention removed the
        // sound one a second fall-back needed.
        long[] shape = [4, 4];
        var full = CheckpointFixture.Iota(shape);
        var reader = new CheckpointReader(_fixture.Store, _fixture.Layout);
        var retention = new CheckpointRetention(_fixture.Store, _fixture.Layout);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 2, generation: 1);
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 3, generation: 1);
        await reader.MarkDamagedAsync(new CheckpointPointer(3, 1, _fixture.Layout.Manifest(3, 1)), "block 0 fails its SHA-256 check");
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 3, generation: 3);
        await reader.MarkDamagedAsync(new CheckpointPointer(3, 3, _fixture.Layout.Manifest(3, 3)), "block 1 fails its SHA-256 check");

        // latest names the damaged step 3 of generation 3: the newest sound one at or before it is what a caller finds.
        Assert.Equal([2L], (await reader.CommittedAsync()).Select(c => c.Step));
        Assert.Equal(_fixture.Layout.Manifest(2, 1), (await reader.FindAsync(null))?.Name);
        var result = await retention.ApplyAsync(keepLast: 1, keepEvery: 0);
        Assert.Equal([_fixture.Layout.Folder(2, 1)], result.Kept);
        Assert.Equal([_fixture.Layout.Folder(3, 1)], result.OrphansRemoved);

        // The next sound checkpoint moves latest past the damaged one, which then goes, its mark last.
        await _fixture.Save("w", full, shape, [TensorRegion.Whole(shape)], step: 4, generation: 3);
        result = await retention.ApplyAsync(keepLast: 1, keepEvery: 0);
        Assert.Equal([_fixture.Layout.Folder(4, 3)], result.Kept);
        Assert.Equal([_fixture.Layout.Folder(2, 1)], result.Removed);
        Assert.Equal([_fixture.Layout.Folder(3, 3)], result.OrphansRemoved);
        var left = new List<string>();
        await foreach (var blob in _fixture.Store.ListAsync(_fixture.Layout.Root + "/")) left.Add(blob);
        Assert.DoesNotContain(left, b => b.StartsWith(_fixture.Layout.Folder(3, 3), StringComparison.Ordinal));
    }

    public void Dispose() => _fixture.Dispose();
}
