namespace Elastic.Checkpoints.Format;

/// <summary>A box of a tensor held by one rank, with its bytes (row-major, little-endian): what a writer saves.</summary>
public sealed record ShardedTensor(string Key, string DType, long[] GlobalShape, long[] GlobalOffset, long[] LocalShape, ReadOnlyMemory<byte> Data)
{
    public static ShardedTensor Whole(string key, string dtype, long[] shape, ReadOnlyMemory<byte> data) => new(key, dtype, shape, new long[shape.Length], shape, data);

    public TensorRegion Region => new(GlobalOffset, LocalShape);
}
