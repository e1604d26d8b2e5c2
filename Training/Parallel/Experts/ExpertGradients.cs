using Elastic.Parallelism.Pipeline;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// Hosted experts' weight gradients under expert parallelism. A rank hosts its experts for every source of its expert
/// group, whose micro-batches are other blocks of the canonical tree; so each source's contributions are summed apart,
/// in micro-batch order (one tree per chunk, source and piece of the source's block), and once the block is done they are
/// combined in the tree into the pieces of the group's block (the ep consecutive replicas' blocks together), which the
/// expert-data group then reduces like any replica's. A source's micro-batches past its block (padding to the longest) are
/// dropped. The cost is one expert-gradient buffer per source and tree level: what the layout-free order takes.
/// </summary>
public sealed class ExpertGradients : IDisposable
{
    private readonly int _sources;
    private readonly Device _device;
    private readonly Dictionary<int, Part> _byLayer = [];
    private readonly Dictionary<int, Part> _byChunk = [];
    private (IReadOnlyList<IReadOnlyList<(int First, int Count)>> Sources, IReadOnlyList<(int First, int Count)> Group)? _arranged;
    // Each source's piece of each of its micro-batches.
    private int[][] _pieceOf = [];

    /// <summary>One chunk's hosted expert pieces in buffer order, a pool of compact buffers, and per source its tree and current buffer.</summary>
    private sealed class Part(ModelChunk chunk, IReadOnlyList<(string Key, long Offset, long Length)> slices)
    {
        public ModelChunk Chunk { get; } = chunk;
        public IReadOnlyList<(string Key, long Offset, long Length)> Slices { get; } = slices;
        public Dictionary<string, (long Offset, long Length)> ByKey { get; } = slices.ToDictionary(s => s.Key, s => (s.Offset, s.Length));
        public long Length => Slices.Sum(s => s.Length);
        public Stack<Tensor> Free { get; } = new();
        public List<Tensor> All { get; } = [];
        public TreeAccumulator<Tensor>[][] Trees { get; set; } = [];
        public Tensor?[] Current { get; set; } = [];
    }

    private readonly IReadOnlyList<string> _names;

    public ExpertGradients(DecoderModel model, int sources, Device device)
    {
        (_sources, _device, _names) = (sources, device, ExpertWeights.Names(model.Spec));
        foreach (var chunk in model.Chunks)
        {
            var slices = new List<(string, long, long)>();
            long offset = 0;
            foreach (var (name, piece) in model.Parameters.Where(p => p.Layout.Experts && ChunkParameters.Holds(chunk, p.Name, false)).SelectMany(p => p.Named()))
            {
                slices.Add((name, offset, piece.numel()));
                offset += piece.numel();
            }
            if (slices.Count == 0) continue;
            var part = new Part(chunk, slices);
            _byChunk[chunk.Index] = part;
            for (var layer = chunk.First; layer < chunk.First + chunk.Count; layer++) _byLayer[layer] = part;
        }
    }

    /// <summary>Bytes of every buffer the pools have allocated.</summary>
    public long AllocatedBytes => _byChunk.Values.Sum(p => p.All.Count * p.Length * sizeof(float));

    /// <summary>
    /// Where the step's micro-batches come from: each source's block as its pieces (subtrees of the canonical tree, in order),
    /// and the pieces of the group's block (the sources' blocks together) that <see cref="WriteInto"/> writes. Set by the
    /// data-parallel trainer of each generation, before its first step.
    /// </summary>
    public void Arrange(IReadOnlyList<IReadOnlyList<(int First, int Count)>> sources, IReadOnlyList<(int First, int Count)> group)
    {
        if (sources.Count != _sources)
            throw new ArgumentException($"{sources.Count} sources arranged for an expert group of {_sources}", nameof(sources));
        _arranged = (sources, group);
    }

    /// <summary>Starts a step's block of <paramref name="count"/> micro-batches on every source: every source's sums start empty.</summary>
    public void Begin(int count)
    {
        var (sources, _) = Arrangement;
        _pieceOf = sources.Select(pieces => pieces.SelectMany((p, k) => Enumerable.Repeat(k, p.Count)).ToArray()).ToArray();
        if (_pieceOf.Any(p => p.Length > count))
            throw new ArgumentException($"a source's block is longer than the {count} micro-batches every source runs", nameof(count));
        foreach (var part in _byChunk.Values)
        {
            part.Trees = sources.Select(pieces => pieces.Select(p =>
                new TreeAccumulator<Tensor>(p.First - pieces[0].First, p.First - pieces[0].First + p.Count, (into, other) => into.add_(other, alpha: One), part.Free.Push)).ToArray()).ToArray();
            part.Current = new Tensor?[_sources];
        }
    }

    /// <summary>Adds one hosted expert's weight gradients (in <see cref="ExpertWeights.Names"/>' order) for a micro-batch of <paramref name="source"/>.</summary>
    internal void Add(int layer, int source, int expert, IReadOnlyList<Tensor> grads)
    {
        var part = _byLayer[layer];
        var buffer = part.Current[source] ??= Rent(part);
        using var scope = NewDisposeScope();
        for (var i = 0; i < _names.Count; i++)
        {
            var (offset, length) = part.ByKey[$"h.{layer}.mlp.experts.{_names[i]}#{expert}"];
            buffer.narrow(0, offset, length).add_(grads[i].reshape(-1), alpha: One);
        }
    }

    /// <summary>After <paramref name="chunk"/>'s backward of micro-batch <paramref name="micro"/>: each source's contributions become a leaf of its tree (or are dropped, past its block).</summary>
    public void Complete(ModelChunk chunk, int micro)
    {
        if (!_byChunk.TryGetValue(chunk.Index, out var part)) return;
        for (var source = 0; source < _sources; source++)
        {
            var contribution = part.Current[source];
            part.Current[source] = null;
            if (micro >= _pieceOf[source].Length)
            {
                if (contribution is not null) part.Free.Push(contribution);
                continue;
            }
            part.Trees[source][_pieceOf[source][micro]].Add(micro, contribution ?? Rent(part));
        }
    }

    /// <summary>
    /// Writes each chunk's hosted experts' sums over the group's block, piece k (the sources' piece sums combined in the tree)
    /// into their slices of <paramref name="targets"/>[k].
    /// </summary>
    /// <param name="slice">Where a gradient key sits in the stage's flat buffer.</param>
    public void WriteInto(IReadOnlyList<Tensor> targets, Func<ModelChunk, string, (long Offset, long Length)> slice)
    {
        using var scope = NewDisposeScope();
        var (sources, group) = Arrangement;
        foreach (var part in _byChunk.Values)
        {
            var sums = new Dictionary<(int First, int Count), Tensor>();
            for (var source = 0; source < _sources; source++)
                for (var k = 0; k < part.Trees[source].Length; k++)
                    sums[sources[source][k]] = part.Trees[source][k].Sum;
            for (var g = 0; g < group.Count; g++)
            {
                var total = Node(group[g].First, group[g].First + group[g].Count);
                foreach (var (key, offset, length) in part.Slices)
                {
                    var at = slice(part.Chunk, key);
                    targets[g].narrow(0, at.Offset, length).copy_(total.narrow(0, offset, length));
                }
            }
            foreach (var sum in sums.Values) part.Free.Push(sum);

            // The sum over [lo, hi) from the sources' pieces inside it, in the canonical tree (added into the leftmost piece's buffer).
            Tensor Node(int lo, int hi)
            {
                if (sums.TryGetValue((lo, hi - lo), out var piece)) return piece;
                var mid = PairwiseTree.Split(lo, hi);
                return Node(lo, mid).add_(Node(mid, hi), alpha: One);
            }
        }
    }

    private (IReadOnlyList<IReadOnlyList<(int First, int Count)>> Sources, IReadOnlyList<(int First, int Count)> Group) Arrangement =>
        _arranged ?? throw new InvalidOperationException("hosted experts' gradients need to know which micro-batches each source runs (Arrange) before a step");

    private Tensor Rent(Part part)
    {
        if (!part.Free.TryPop(out var buffer))
        {
            buffer = empty(part.Length, dtype: ScalarType.Float32, device: _device).DetachFromDisposeScope();
            part.All.Add(buffer);
        }
        // The pool's own wrapper: one returned by zero_ would belong to the caller's dispose scope.
        buffer.zero_();
        return buffer;
    }

    public void Dispose()
    {
        foreach (var part in _byChunk.Values)
        {
            foreach (var buffer in part.All) buffer.Dispose();
            part.All.Clear();
            part.Free.Clear();
        }
    }
}
