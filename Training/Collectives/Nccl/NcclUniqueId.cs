namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// ncclUniqueId: the 128 bytes that name one communicator (and where its bootstrap listens). Rank 0's process draws it;
/// the coordinator hands it to the others with their assignments, over Orleans, never over the data plane.
/// </summary>
public sealed record NcclUniqueId
{
    public const int Length = 128;

    private NcclUniqueId(byte[] bytes) => Bytes = bytes;

    public byte[] Bytes { get; }

    /// <summary>An id received as bytes; anything but 128 of them is an error that says so.</summary>
    public static NcclUniqueId Parse(byte[] bytes) => bytes.Length == Length
        ? new NcclUniqueId([.. bytes])
        : throw new ArgumentException($"an NCCL unique id has {Length} bytes, not {bytes.Length}", nameof(bytes));

    public bool Equals(NcclUniqueId? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);

    public override int GetHashCode() => BitConverter.ToInt32(Bytes, 0);

    internal static unsafe NcclUniqueId From(Raw raw) => new(new ReadOnlySpan<byte>(raw.Internal, Length).ToArray());

    internal unsafe Raw ToRaw()
    {
        var raw = new Raw();
        Bytes.CopyTo(new Span<byte>(raw.Internal, Length));
        return raw;
    }

    /// <summary>The C struct, passed by value.</summary>
    internal unsafe struct Raw
    {
        public fixed byte Internal[Length];
    }
}
