using System.Numerics;

namespace Elastic.Training.Collectives;

/// <summary>Element-wise fp32 arithmetic on raw buffers. Vector and scalar adds round identically (IEEE, no fused ops), so the bits match torch's add_.</summary>
internal static class FloatMath
{
    public static void AddInto(Span<float> into, ReadOnlySpan<float> other)
    {
        if (into.Length != other.Length) throw new ArgumentException($"lengths differ: {into.Length} and {other.Length}", nameof(other));
        var i = 0;
        if (Vector.IsHardwareAccelerated)
            for (var width = Vector<float>.Count; i <= into.Length - width; i += width)
                (new Vector<float>(into[i..]) + new Vector<float>(other[i..])).CopyTo(into[i..]);
        for (; i < into.Length; i++) into[i] += other[i];
    }
}
