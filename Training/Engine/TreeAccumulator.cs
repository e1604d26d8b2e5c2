namespace Elastic.Training.Engine;

/// <summary>
/// The canonical pairwise tree (<see cref="PairwiseTree"/>) over leaves [lo, hi) that arrive one at a time in index
/// order, as a pipeline stage's backward passes finish: each completed subtree waits on a stack until its sibling
/// completes, so the sum has the bits of <see cref="PairwiseTree.ReduceInto{TBuffer}"/> and holds at most
/// log2(hi - lo) + 1 partial sums.
/// </summary>
public sealed class TreeAccumulator<T>(int lo, int hi, Action<T, T> addInto, Action<T> release)
{
    private readonly Stack<(int Lo, int Hi, T Sum)> _done = new();
    private int _next = lo;
    private readonly int _lo = lo;

    /// <summary>Whether every leaf has arrived.</summary>
    public bool Complete => _next == hi;

    /// <summary>The sum of every leaf, once all have arrived.</summary>
    public T Sum => Complete && _done.Count == 1 ? _done.Peek().Sum : throw new InvalidOperationException($"the sum over [{_lo}, {hi}) is not complete: leaf {_next} is next");

    /// <summary>The next leaf index expected.</summary>
    public int Next => _next;

    /// <summary>
    /// Adds leaf <paramref name="index"/> (which must be <see cref="Next"/>); a right subtree's buffer is released once added into
    /// its left sibling.
    /// </summary>
    /// <param name="added">The caller has made the adds <see cref="AddsFor"/> listed (part by part, as parts of the leaf became
    /// final): only the bookkeeping and the releases remain.</param>
    public void Add(int index, T value, bool added = false)
    {
        if (index != _next) throw new InvalidOperationException($"leaf {index} arrived while leaf {_next} of [{_lo}, {hi}) was expected");
        _next++;
        var node = (Lo: index, Hi: index + 1, Sum: value);
        while (_done.TryPeek(out var left) && IsNode(left.Lo, node.Hi, _lo, hi))
        {
            _done.Pop();
            if (!added) addInto(left.Sum, node.Sum);
            release(node.Sum);
            node = (left.Lo, node.Hi, left.Sum);
        }
        _done.Push(node);
    }

    /// <summary>The adds <see cref="Add"/> makes for leaf <paramref name="index"/> holding <paramref name="value"/>, in order: each right sum into its left sibling.</summary>
    public IReadOnlyList<(T Into, T From)> AddsFor(int index, T value)
    {
        if (index != _next) throw new InvalidOperationException($"leaf {index} is not next: leaf {_next} of [{_lo}, {hi}) is");
        var adds = new List<(T Into, T From)>();
        var node = (Lo: index, Hi: index + 1, Sum: value);
        // Enumerated from the top, as Add pops.
        foreach (var left in _done)
        {
            if (!IsNode(left.Lo, node.Hi, _lo, hi)) break;
            adds.Add((left.Sum, node.Sum));
            node = (left.Lo, node.Hi, left.Sum);
        }
        return adds;
    }

    private static bool IsNode(int a, int c, int lo, int hi)
    {
        while (true)
        {
            if (a == lo && c == hi) return true;
            if (a < lo || c > hi || c - a >= hi - lo) return false;
            var mid = PairwiseTree.Split(lo, hi);
            if (c <= mid) hi = mid;
            else if (a >= mid) lo = mid;
            else return false;
        }
    }
}
