using Elastic.Checkpoints.Format;

namespace Elastic.Checkpoints.Resharding;

/// <summary>
/// The overlap arithmetic that makes checkpoints layout-agnostic: which bytes of a saved chunk hold a wanted
/// region, and copying them into place. Works for boxes of any rank cut along any dimensions.
/// </summary>
public static class RegionCopy
{
    /// <summary>
    /// The contiguous byte runs of <paramref name="chunk"/> (stored row-major) that hold <paramref name="overlap"/>,
    /// relative to the chunk's first byte, in order and with adjacent runs merged.
    /// </summary>
    public static List<(long Offset, long Length)> ByteRuns(TensorRegion chunk, TensorRegion overlap, int elementSize)
    {
        var runs = new List<(long Offset, long Length)>();
        foreach (var (chunkOffset, _, length) in Rows(chunk, overlap, overlap))
        {
            var (start, bytes) = (chunkOffset * elementSize, length * elementSize);
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Length == start) runs[^1] = (runs[^1].Offset, runs[^1].Length + bytes);
            else runs.Add((start, bytes));
        }
        return runs;
    }

    /// <summary>
    /// Copies the part of <paramref name="sourceRegion"/> that lies in <paramref name="targetRegion"/>. The source span
    /// holds the region's bytes from byte <paramref name="sourceStart"/> on (a ranged read need not start at the chunk's first byte).
    /// </summary>
    public static void Copy(ReadOnlySpan<byte> source, TensorRegion sourceRegion, long sourceStart, Span<byte> target, TensorRegion targetRegion, int elementSize)
    {
        if (sourceRegion.Intersect(targetRegion) is not { } overlap) return;
        foreach (var (from, to, length) in Rows(sourceRegion, targetRegion, overlap))
            source.Slice((int)(from * elementSize - sourceStart), (int)(length * elementSize)).CopyTo(target.Slice((int)(to * elementSize), (int)(length * elementSize)));
    }

    /// <summary>
    /// Walks <paramref name="overlap"/> one innermost row at a time, yielding the row's element offset inside
    /// <paramref name="a"/>, inside <paramref name="b"/>, and its length.
    /// </summary>
    private static IEnumerable<(long InA, long InB, long Length)> Rows(TensorRegion a, TensorRegion b, TensorRegion overlap)
    {
        var rank = overlap.Rank;
        if (rank == 0)
        {
            yield return (0, 0, 1);
            yield break;
        }
        var (stridesA, stridesB) = (Strides(a.Shape), Strides(b.Shape));
        var index = new long[rank - 1];
        var rowLength = overlap.Shape[rank - 1];
        var rows = overlap.Elements / rowLength;
        for (long row = 0; row < rows; row++)
        {
            long inA = 0, inB = 0;
            for (var d = 0; d < rank; d++)
            {
                var coordinate = overlap.Offset[d] + (d < rank - 1 ? index[d] : 0);
                inA += (coordinate - a.Offset[d]) * stridesA[d];
                inB += (coordinate - b.Offset[d]) * stridesB[d];
            }
            yield return (inA, inB, rowLength);
            for (var d = rank - 2; d >= 0; d--)
            {
                if (++index[d] < overlap.Shape[d]) break;
                index[d] = 0;
            }
        }
    }

    private static long[] Strides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return strides;
    }
}
