using System.Runtime.InteropServices;
using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// The replicas one rank spreads every MoE layer's E experts over (ep of them): expert rank q holds experts
/// [q·E/ep, (q+1)·E/ep), the same at every stage and tensor rank. Tokens travel to their experts' ranks and back as
/// all-to-alls over the data plane (row counts first, then the rows).
/// </summary>
public sealed class ExpertGroup
{
    /// <param name="ranks">The expert group's communicator (index = expert rank); null for a group of one.</param>
    public ExpertGroup(int experts, Communicator? ranks)
    {
        var degree = ranks?.WorldSize ?? 1;
        if (experts < 1 || experts % degree != 0)
            throw new ArgumentException($"ep {degree} does not divide the {experts} experts of each MoE layer", nameof(ranks));
        Experts = experts;
        Ranks = ranks;
    }

    /// <summary>A rank's expert group for a model with MoE layers (from its process groups); null for a dense model.</summary>
    public static ExpertGroup? Of(Jobs.ModelSpec model, ProcessGroups groups) => model.Moe is { } moe ? new ExpertGroup(moe.Experts, groups.Experts) : null;

    public int Experts { get; }
    public Communicator? Ranks { get; }
    public int Degree => Ranks?.WorldSize ?? 1;
    public int Rank => Ranks?.Rank ?? 0;
    public int PerRank => Experts / Degree;
    public int First => Rank * PerRank;

    /// <summary>The expert rank that holds <paramref name="expert"/>.</summary>
    public int OwnerOf(int expert) => expert / PerRank;

    /// <summary>The experts of expert rank <paramref name="rank"/>, in order.</summary>
    public IEnumerable<int> ExpertsOf(int rank) => Enumerable.Range(rank * PerRank, PerRank);

    /// <summary>Every rank tells each the row counts it sends for that rank's experts; returns, per source rank, the counts for this rank's experts.</summary>
    public IReadOnlyList<int[]> ExchangeCounts(IReadOnlyList<int[]> toRank)
    {
        if (Ranks is null) return toRank;
        var slots = Enumerable.Range(0, Degree).Select(_ => new byte[PerRank * sizeof(int)]).ToList();
        Ranks.AllToAll(toRank.Select(c => (ReadOnlyMemory<byte>)MemoryMarshal.AsBytes(c.AsSpan()).ToArray()).ToList(), slots.Select(b => (Memory<byte>)b).ToList());
        return slots.Select(b => MemoryMarshal.Cast<byte, int>(b).ToArray()).ToList();
    }

    /// <summary>
    /// Sends each rank its blocks of fp32 rows ([n, width] each, in order) and returns, per source rank, its blocks for this
    /// rank, cut by <paramref name="rowsFrom"/> (the counts the sources announced).
    /// </summary>
    public IReadOnlyList<IReadOnlyList<Tensor>> ExchangeRows(IReadOnlyList<IReadOnlyList<Tensor>> toRank, IReadOnlyList<IReadOnlyList<int>> rowsFrom, long width, Device device)
    {
        if (Ranks is null) return toRank;
        using var scope = NewDisposeScope();
        var sends = toRank.Select(blocks => (ReadOnlyMemory<byte>)(blocks.Count == 0 ? [] : cat(blocks.ToList(), 0).to_type(ScalarType.Float32).cpu().contiguous().bytes.ToArray())).ToList();
        var slots = rowsFrom.Select(rows => new byte[rows.Sum() * width * sizeof(float)]).ToList();
        Ranks.AllToAll(sends, slots.Select(b => (Memory<byte>)b).ToList());
        return slots.Select((bytes, source) =>
        {
            var host = empty([rowsFrom[source].Sum(), width], dtype: ScalarType.Float32);
            host.bytes = bytes;
            var rows = rowsFrom[source].Select(n => (long)n).ToArray();
            // Each block in its own allocation, as a local index_select would give it: a matmul's bits may depend on alignment.
            return (IReadOnlyList<Tensor>)(rows.Length == 0 ? [] : host.to(device).split(rows, 0).Select(t => t.clone().MoveToOuterDisposeScope()).ToList());
        }).ToList();
    }

    /// <summary>Every rank's experts of a stacked expert tensor (split along dimension 0), concatenated in rank order: the whole tensor.</summary>
    public Tensor Gather(Tensor part)
    {
        if (Ranks is null) return part;
        using var scope = NewDisposeScope();
        var mine = part.detach().cpu().contiguous().bytes.ToArray();
        var all = new byte[mine.Length * Degree];
        Ranks.AllGather(mine, all);
        var shape = part.shape.ToArray();
        shape[0] *= Degree;
        var host = empty(shape, dtype: part.dtype);
        host.bytes = all;
        return host.to(part.device).MoveToOuterDisposeScope();
    }
}
