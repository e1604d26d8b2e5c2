namespace Elastic.Checkpoints.Format;

/// <summary>
/// One saved piece of one tensor, as the manifest records it: which tensor (key), which box of it (global
/// shape, global offset, local shape), where its bytes are (file and byte range), and their SHA-256 —
/// whole, and per block so that a reader that needs only part of a chunk can still verify what it read.
/// </summary>
public sealed record ChunkDescriptor
{
    public required string Key { get; init; }
    public required string DType { get; init; }
    public required long[] GlobalShape { get; init; }
    public required long[] GlobalOffset { get; init; }
    public required long[] LocalShape { get; init; }
    public required string File { get; init; }
    public required long ByteOffset { get; init; }
    public required long ByteLength { get; init; }
    public required string Sha256 { get; init; }
    public required int BlockSize { get; init; }
    public required string[] BlockSha256 { get; init; }

    public TensorRegion Region => new(GlobalOffset, LocalShape);

    public override string ToString() => $"{Key}{Region} in {File}";
}
