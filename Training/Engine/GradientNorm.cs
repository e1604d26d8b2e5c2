using System.Runtime.InteropServices;
using Elastic.Training.Collectives;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The gradient's L2 norm for clipping, the same bits on every layout: a sum of squares per (parameter, shard), each
/// over a tensor whose shape no layout changes, added in fp64 in one fixed order (every parameter of the model by name,
/// shards by index). Each sum is counted by the one rank that owns it (its pipeline stage's chunk owns the parameter;
/// a tensor-split parameter's shard is on one tensor rank, a replicated parameter (and an expert, which the tensor ranks
/// share) is counted by tensor rank 0), and the
/// per-rank vectors are gathered over the tensor and pipeline groups: every other rank contributes an exact zero. Under
/// ZeRO only the data-parallel rank that updates a parameter has its reduced gradient, so it alone counts it, and the
/// vectors are gathered over the data-parallel group too. Under expert parallelism an expert's sums are counted by the
/// expert rank hosting it and the rest by expert rank 0, and the vectors are gathered over the expert group (under ZeRO, by
/// the owner among the replicas hosting it, and gathered over the data-parallel group with the rest).
/// </summary>
public static class GradientNorm
{
    /// <param name="zero">Under ZeRO: whether this rank updates a parameter (by name), and its data-parallel group.</param>
    public static double Compute(DecoderModel model, FlatGradients layout, Tensor flat, Communicator? pipeline, (Func<string, bool> Updates, Communicator? Replicas)? zero = null)
    {
        // Under ZeRO every (parameter, shard) has one owner among all the replicas, experts included: the data-parallel gather counts each once.
        var experts = zero is null ? model.Experts.Ranks : null;
        var local = new Dictionary<string, double>();
        using (var scope = NewDisposeScope())
        {
            var slices = layout.Slices.Where(s => !s.Name.StartsWith(DecoderModel.TiedHeadPrefix, StringComparison.Ordinal)).ToList();
            // x * x, not square(): TorchSharp's square is pow with an implicit Scalar, which a collection can free mid-call.
            var sums = slices.Select(s => flat.narrow(0, s.Offset, s.Length)).Select(g => g.mul(g).sum(ScalarType.Float64)).ToList();
            var values = sums.Count == 0 ? [] : stack(sums).cpu().data<double>().ToArray();
            for (var i = 0; i < slices.Count; i++) local[slices[i].Name] = values[i];
        }
        var group = model.Group;
        var entries = ParameterLayout.Of(model.Spec)
            .SelectMany(p => p.SplitDim is null ? [(Layout: p, Key: p.Name, Split: false)] : Enumerable.Range(0, p.Pieces(group.Shards)).Select(s => (Layout: p, Key: $"{p.Name}#{s}", Split: p.TensorSplit)))
            .ToList();
        var mine = new double[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            var (parameter, key, split) = entries[i];
            var owned = model.Chunks.Any(c => ChunkParameters.Owns(c, parameter.Name)) && (split || group.Rank == 0) && (zero?.Updates(parameter.Name) ?? true)
                && (parameter.Experts || experts is not { Rank: > 0 });
            if (owned && local.TryGetValue(key, out var sum)) mine[i] = sum;
        }
        var all = SumOver(experts, SumOver(pipeline, SumOver(group.Ranks, SumOver(zero?.Replicas, mine))));
        double total = 0;
        foreach (var value in all) total += value;
        return Math.Sqrt(total);
    }

    /// <summary>Adds the ranks' vectors entry by entry; each entry is non-zero on at most one rank, so the sums are exact.</summary>
    private static double[] SumOver(Communicator? ranks, double[] mine)
    {
        if (ranks is null) return mine;
        var bytes = MemoryMarshal.AsBytes(mine.AsSpan()).ToArray();
        var gathered = new byte[bytes.Length * ranks.WorldSize];
        ranks.AllGather(bytes, gathered);
        var sums = new double[mine.Length];
        for (var r = 0; r < ranks.WorldSize; r++)
        {
            var values = MemoryMarshal.Cast<byte, double>(gathered.AsSpan(r * bytes.Length, bytes.Length));
            for (var i = 0; i < sums.Length; i++) sums[i] += values[i];
        }
        return sums;
    }
}
