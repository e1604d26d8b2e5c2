using System.Runtime.InteropServices;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;

namespace Elastic.Tests.Checkpoints;

/// <summary>A checkpoint store (a temporary directory unless given another), and tensors whose every element says where it sits.</summary>
public sealed class CheckpointFixture(IBlobStore? store = null) : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("elastic-ckpt-").FullName;
    public IBlobStore Store => store ?? new LocalDirectoryStore(Folder);
    public CheckpointLayout Layout { get; init; } = new("jobs/test");

    /// <summary>A float32 tensor whose element i holds i (so any misplaced byte shows).</summary>
    public static float[] Iota(long[] shape) => Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(i => (float)i).ToArray();

    /// <summary>The elements of <paramref name="region"/> of a row-major tensor, in row-major order.</summary>
    public static float[] Slice(float[] full, long[] shape, TensorRegion region)
    {
        var result = new byte[region.Elements * sizeof(float)];
        Elastic.Checkpoints.Resharding.RegionCopy.Copy(MemoryMarshal.AsBytes(full.AsSpan()), TensorRegion.Whole(shape), 0, result, region, sizeof(float));
        return MemoryMarshal.Cast<byte, float>(result.AsSpan()).ToArray();
    }

    /// <summary>Cuts dimension <paramref name="dim"/> at the given sizes; other dimensions stay whole.</summary>
    public static List<TensorRegion> Cut(long[] shape, int dim, IReadOnlyList<long> sizes)
    {
        var regions = new List<TensorRegion>();
        long at = 0;
        foreach (var size in sizes)
        {
            var offset = new long[shape.Length];
            var extent = (long[])shape.Clone();
            offset[dim] = at;
            extent[dim] = size;
            regions.Add(new TensorRegion(offset, extent));
            at += size;
        }
        return regions;
    }

    public static List<TensorRegion> Even(long[] shape, int dim, int ways) => Cut(shape, dim, Enumerable.Repeat(shape[dim] / ways, ways).ToList());

    /// <summary>Saves one tensor cut into <paramref name="regions"/>, one writer per region, and commits the checkpoint.</summary>
    public async Task<CheckpointManifest> Save(string key, float[] full, long[] shape, IReadOnlyList<TensorRegion> regions, long step = 1, int generation = 1, int blockSize = 64)
    {
        var writer = new CheckpointWriter(Store, Layout, blockSize);
        var chunks = new List<ChunkDescriptor>();
        for (var w = 0; w < regions.Count; w++)
        {
            var data = MemoryMarshal.AsBytes(Slice(full, shape, regions[w]).AsSpan()).ToArray();
            chunks.AddRange(await writer.WriteChunksAsync(step, generation, $"{w}", [new ShardedTensor(key, "F32", shape, regions[w].Offset, regions[w].Shape, data)]));
        }
        return await writer.CommitAsync(new CheckpointManifest
        {
            JobId = "test",
            Step = step,
            Generation = generation,
            Plan = $"{regions.Count} writers",
            CreatedAt = DateTimeOffset.UtcNow,
            Chunks = chunks,
        });
    }

    public async Task<float[]> Load(CheckpointManifest manifest, string key, TensorRegion region) =>
        MemoryMarshal.Cast<byte, float>((await new CheckpointReader(Store, Layout).ReadRegionAsync(manifest, key, region)).AsSpan()).ToArray();

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
