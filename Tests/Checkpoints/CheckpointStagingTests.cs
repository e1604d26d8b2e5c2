using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Tests.Checkpoints;

public sealed class CheckpointStagingTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-staging-").FullName;

    [Fact]
    public async Task A_staged_capture_reuses_its_buffers_and_holds_the_state_of_its_step()
    {
        var spec = TestSpecs.Tiny(steps: 3);
        var (first, firstBytes, again, fresh) = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            using var staging = new CheckpointStaging();
            trainer.Step(1);
            var first = EngineCheckpoint.Capture(trainer, staging);
            var firstBytes = first.Select(s => s.Data.ToArray()).ToList();
            trainer.Step(2);
            var again = EngineCheckpoint.Capture(trainer, staging);
            var fresh = EngineCheckpoint.Capture(trainer);
            return (first, firstBytes, again, fresh);
        });

        Assert.All(first.Zip(again), pair => Assert.True(pair.First.Data.Equals(pair.Second.Data), $"{pair.First.Key}: a new buffer"));
        Assert.Equal(fresh.Select(s => s.Data.ToArray()), again.Select(s => s.Data.ToArray()));
        Assert.NotEqual(firstBytes, again.Select(s => s.Data.ToArray()).ToList());
    }

    [Fact]
    public async Task A_host_tensor_is_written_from_its_own_memory_and_reads_back_bit_exactly()
    {
        using var values = arange(0, 12_345, dtype: float32).mul_(0.37f);
        using var memory = new TensorMemory(values);
        var store = new LocalDirectoryStore(_folder);
        var layout = new CheckpointLayout("jobs/staging");
        var chunks = await new CheckpointWriter(store, layout).WriteChunksAsync(1, 1, "r0", [ShardedTensor.Whole("w", "F32", values.shape, memory.Memory)]);
        var manifest = await new CheckpointWriter(store, layout).CommitAsync(new CheckpointManifest
        {
            JobId = "staging", Step = 1, Generation = 1, Plan = "dp=1", CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
        });

        var read = await new CheckpointReader(store, layout).ReadRegionsAsync(manifest, [("w", TensorRegion.Whole(values.shape))]);

        Assert.Equal(values.bytes.ToArray(), read[0]);
    }

    [Fact]
    public void Only_a_contiguous_host_tensor_exposes_its_memory()
    {
        using var matrix = zeros(4, 6);
        using var transposed = matrix.t();
        var error = Assert.Throws<ArgumentException>(() => new TensorMemory(transposed));
        Assert.Contains("contiguous: False", error.Message);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
