namespace Elastic.Training.Engine;

/// <summary>
/// The canonical reduction order over micro-batch indices: the sum over [lo, hi) is the sum over
/// [lo, mid) plus the sum over [mid, hi), with mid = lo + (hi - lo) / 2. Because every aligned block of
/// size count / 2^j is a node of this tree, summing such blocks first (one per data-parallel replica)
/// and then combining the block sums with the same rule gives the same bits as summing everything on
/// one device. That is what makes data-parallel width changes bitwise invisible.
/// </summary>
public static class PairwiseTree
{
    public static int Split(int lo, int hi) => lo + (hi - lo) / 2;

    /// <summary>Whether <paramref name="count"/> leaves split into <paramref name="blocks"/> tree-aligned blocks (a power of two dividing count).</summary>
    public static bool IsAlignedBlockCount(int count, int blocks) =>
        blocks >= 1 && (blocks & (blocks - 1)) == 0 && count % blocks == 0;

    /// <summary>Reduces given values; <paramref name="combine"/> may add in place and return its left argument.</summary>
    public static T Reduce<T>(int lo, int hi, Func<int, T> leaf, Func<T, T, T> combine)
    {
        if (hi - lo == 1) return leaf(lo);
        var mid = Split(lo, hi);
        var left = Reduce(lo, mid, leaf, combine);
        return combine(left, Reduce(mid, hi, leaf, combine));
    }

    /// <summary>
    /// Reduces leaves that are computed into buffers (gradients): <paramref name="leaf"/> writes leaf i into a
    /// buffer, right subtrees go to a scratch buffer from <paramref name="rent"/>, and <paramref name="addInto"/>
    /// adds it into the left one. Holds at most log2(hi - lo) scratch buffers at once.
    /// </summary>
    public static void ReduceInto<TBuffer>(int lo, int hi, TBuffer target, Action<int, TBuffer> leaf,
        Action<TBuffer, TBuffer> addInto, Func<TBuffer> rent, Action<TBuffer> release)
    {
        if (hi - lo == 1)
        {
            leaf(lo, target);
            return;
        }
        var mid = Split(lo, hi);
        ReduceInto(lo, mid, target, leaf, addInto, rent, release);
        var scratch = rent();
        try
        {
            ReduceInto(mid, hi, scratch, leaf, addInto, rent, release);
            addInto(target, scratch);
        }
        finally
        {
            release(scratch);
        }
    }
}
