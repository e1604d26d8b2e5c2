using Elastic.Checkpoints.Format;

namespace Elastic.Checkpoints.Resharding;

/// <summary>
/// Who sends which boxes to whom when units of a new layout take their state from units of another: every receiver's
/// wanted region of every tensor is cut into disjoint pieces, each taken from one source that holds it. Where several
/// sources hold the same box (data-parallel copies, replicated tensors), the choice rotates with the receiver and the
/// tensor, so the bytes come from all of them at once instead of one broadcasting survivor. Every rank of a transfer
/// computes the same plan from the same inputs.
/// </summary>
public sealed class RegionTransferPlan
{
    private readonly List<(string Key, TensorRegion Region)>[,] _pieces;

    private RegionTransferPlan(int sources, int receivers)
    {
        _pieces = new List<(string, TensorRegion)>[sources, receivers];
        for (var s = 0; s < sources; s++)
            for (var r = 0; r < receivers; r++)
                _pieces[s, r] = [];
    }

    public int Sources => _pieces.GetLength(0);

    public int Receivers => _pieces.GetLength(1);

    /// <summary>The boxes <paramref name="source"/> sends to <paramref name="receiver"/>, in the receiver's order of tensors.</summary>
    public IReadOnlyList<(string Key, TensorRegion Region)> Pieces(int source, int receiver) => _pieces[source, receiver];

    /// <summary>Elements sent by <paramref name="source"/> to all receivers.</summary>
    public long ElementsFrom(int source) => Enumerable.Range(0, Receivers).Sum(r => _pieces[source, r].Sum(p => p.Region.Elements));

    /// <param name="held">Per source, the boxes it holds (key and region).</param>
    /// <param name="wanted">Per receiver, the boxes it needs.</param>
    /// <exception cref="InvalidOperationException">Some wanted box is not held, whole, by the sources together (named in the message).</exception>
    public static RegionTransferPlan Make(IReadOnlyList<IReadOnlyList<(string Key, TensorRegion Region)>> held,
        IReadOnlyList<IReadOnlyList<(string Key, TensorRegion Region)>> wanted)
    {
        var plan = new RegionTransferPlan(held.Count, wanted.Count);
        var holders = held.SelectMany((boxes, s) => boxes.Select(b => (Source: s, b.Key, b.Region)))
            .ToLookup(h => h.Key, h => (h.Source, h.Region));
        for (var receiver = 0; receiver < wanted.Count; receiver++)
            for (var k = 0; k < wanted[receiver].Count; k++)
            {
                var (key, region) = wanted[receiver][k];
                var first = held.Count == 0 ? 0 : (receiver + k) % held.Count;
                var uncovered = new List<TensorRegion> { region };
                foreach (var (source, box) in holders[key].OrderBy(h => (h.Source - first + held.Count) % held.Count))
                {
                    var left = new List<TensorRegion>();
                    foreach (var part in uncovered)
                        if (box.Intersect(part) is { } overlap)
                        {
                            plan._pieces[source, receiver].Add((key, overlap));
                            left.AddRange(Subtract(part, overlap));
                        }
                        else
                            left.Add(part);
                    uncovered = left;
                    if (uncovered.Count == 0) break;
                }
                if (uncovered.Count > 0)
                    throw new InvalidOperationException($"no source holds {key}{uncovered[0]}, which receiver {receiver} needs ({held.Count} source(s))");
            }
        return plan;
    }

    /// <summary>
    /// The box <paramref name="whole"/> less <paramref name="inner"/> (which lies inside it), as disjoint boxes: along each
    /// dimension in turn, the slabs before and after the inner box, within the inner box's extent in the dimensions already cut.
    /// </summary>
    public static IEnumerable<TensorRegion> Subtract(TensorRegion whole, TensorRegion inner)
    {
        var offset = (long[])whole.Offset.Clone();
        var shape = (long[])whole.Shape.Clone();
        for (var d = 0; d < whole.Rank; d++)
        {
            var (start, end) = (offset[d], offset[d] + shape[d]);
            var (innerStart, innerEnd) = (inner.Offset[d], inner.Offset[d] + inner.Shape[d]);
            if (innerStart > start) yield return Slab(offset, shape, d, start, innerStart);
            if (innerEnd < end) yield return Slab(offset, shape, d, innerEnd, end);
            (offset[d], shape[d]) = (innerStart, innerEnd - innerStart);
        }
    }

    private static TensorRegion Slab(long[] offset, long[] shape, int dim, long from, long to)
    {
        var (o, s) = ((long[])offset.Clone(), (long[])shape.Clone());
        (o[dim], s[dim]) = (from, to - from);
        return new TensorRegion(o, s);
    }
}
