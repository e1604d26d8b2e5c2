using System.Runtime.InteropServices;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The gradient's L2 norm for clipping, the same bits on every layout: a sum of squares per (parameter, shard), each
/// over a tensor whose shape no layout changes, added in fp64 in one fixed order (parameters by name, shards by
/// index). A rank holds only its shards' sums, so the split parameters' sums are gathered from the tensor-parallel
/// group; replicated parameters are counted once.
/// </summary>
public static class GradientNorm
{
    public static double Compute(GptModel model, FlatGradients layout, Tensor flat)
    {
        double[] local;
        using (var scope = NewDisposeScope())
        {
            // x * x, not square(): TorchSharp's square is pow with an implicit Scalar, which a collection can free mid-call.
            var sums = layout.Slices.Select(s => flat.narrow(0, s.Offset, s.Length)).Select(g => g.mul(g).sum(ScalarType.Float64)).ToList();
            local = stack(sums).cpu().data<double>().ToArray();
        }
        var group = model.Group;
        var perRank = group.ShardsPerRank;
        var splitSums = new List<double>();
        var index = 0;
        foreach (var p in model.Parameters)
        {
            if (p.Layout.SplitDim is not null) splitSums.AddRange(local.AsSpan(index, p.Local.Count).ToArray());
            index += p.Local.Count;
        }
        var ranks = Gather(group.Ranks, splitSums.ToArray());
        double total = 0;
        index = 0;
        var split = 0;
        foreach (var p in model.Parameters)
        {
            if (p.Layout.SplitDim is null) total += local[index];
            else
            {
                for (var shard = 0; shard < group.Shards; shard++) total += ranks[shard / perRank][split * perRank + shard % perRank];
                split++;
            }
            index += p.Local.Count;
        }
        return Math.Sqrt(total);
    }

    private static double[][] Gather(Collectives.Communicator? ranks, double[] mine)
    {
        if (ranks is null) return [mine];
        var bytes = MemoryMarshal.AsBytes(mine.AsSpan()).ToArray();
        var all = new byte[bytes.Length * ranks.WorldSize];
        ranks.AllGather(bytes, all);
        return Enumerable.Range(0, ranks.WorldSize).Select(r => MemoryMarshal.Cast<byte, double>(all.AsSpan(r * bytes.Length, bytes.Length)).ToArray()).ToArray();
    }
}
