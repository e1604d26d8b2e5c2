namespace Elastic.Checkpoints.Format;

/// <summary>A box inside a tensor: its first index along each dimension and its extent. Row-major throughout.</summary>
public sealed record TensorRegion(long[] Offset, long[] Shape)
{
    public static TensorRegion Whole(long[] shape) => new(new long[shape.Length], shape);

    public int Rank => Shape.Length;

    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The common part of two boxes of the same tensor, or null when they do not overlap.</summary>
    public TensorRegion? Intersect(TensorRegion other)
    {
        if (other.Rank != Rank) throw new ArgumentException($"rank {other.Rank} against rank {Rank}", nameof(other));
        var offset = new long[Rank];
        var shape = new long[Rank];
        for (var d = 0; d < Rank; d++)
        {
            offset[d] = Math.Max(Offset[d], other.Offset[d]);
            var end = Math.Min(Offset[d] + Shape[d], other.Offset[d] + other.Shape[d]);
            if (end <= offset[d]) return null;
            shape[d] = end - offset[d];
        }
        return new TensorRegion(offset, shape);
    }

    public override string ToString() => $"[{string.Join(", ", Offset.Zip(Shape, (o, s) => $"{o}:{o + s}"))}]";

    public bool Equals(TensorRegion? other) => other is not null && Offset.SequenceEqual(other.Offset) && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode() => HashCode.Combine(Rank, Elements, Offset.FirstOrDefault());
}
