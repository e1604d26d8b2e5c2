using Elastic.Parallelism.Pipeline;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// Hosted experts' weight gradients under expert parallelism. A rank hosts its experts for every source of its expert
/// group, whose micro-batches are other blocks of the canonical tree; so each source's contributions are summed apart,
/// in micro-batch order (one tree per chunk and source), and the sources' sums are combined in the tree once the block
/// is done: the ep consecutive replicas' blocks make one aligned block, which the expert-data group then reduces like
/// any other. The cost is one expert-gradient buffer per source and tree level: what the layout-free order takes.
/// </summary>
public sealed class ExpertGradients : IDisposable
{
    private readonly int _sources;
    private readonly Device _device;
    private readonly Dictionary<int, Part> _byLayer = [];
    private readonly Dictionary<int, Part> _byChunk = [];

    /// <summary>One chunk's hosted expert pieces in buffer order, a pool of compact buffers, and per source its tree and current buffer.</summary>
    private sealed class Part(ModelChunk chunk, IReadOnlyList<(string Key, long Offset, long Length)> slices)
    {
        public ModelChunk Chunk { get; } = chunk;
        public IReadOnlyList<(string Key, long Offset, long Length)> Slices { get; } = slices;
        public Dictionary<string, (long Offset, long Length)> ByKey { get; } = slices.ToDictionary(s => s.Key, s => (s.Offset, s.Length));
        public long Length => Slices.Sum(s => s.Length);
        public Stack<Tensor> Free { get; } = new();
        public List<Tensor> All { get; } = [];
        public TreeAccumulator<Tensor>[] Trees { get; set; } = [];
        public Tensor?[] Current { get; set; } = [];
    }

    public ExpertGradients(GptModel model, int sources, Device device)
    {
        (_sources, _device) = (sources, device);
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

    /// <summary>Starts a block of <paramref name="count"/> micro-batches: every source's sums start empty.</summary>
    public void Begin(int count)
    {
        foreach (var part in _byChunk.Values)
        {
            part.Trees = Enumerable.Range(0, _sources).Select(_ => new TreeAccumulator<Tensor>(0, count, (into, other) => into.add_(other, alpha: One), part.Free.Push)).ToArray();
            part.Current = new Tensor?[_sources];
        }
    }

    /// <summary>Adds one hosted expert's weight gradients (fc weight, fc bias, proj weight, proj bias) for a micro-batch of <paramref name="source"/>.</summary>
    internal void Add(int layer, int source, int expert, IReadOnlyList<Tensor> grads)
    {
        var part = _byLayer[layer];
        var buffer = part.Current[source] ??= Rent(part);
        using var scope = NewDisposeScope();
        for (var i = 0; i < ExpertWeights.Names.Count; i++)
        {
            var (offset, length) = part.ByKey[$"h.{layer}.mlp.experts.{ExpertWeights.Names[i]}#{expert}"];
            buffer.narrow(0, offset, length).add_(grads[i].reshape(-1), alpha: One);
        }
    }

    /// <summary>After <paramref name="chunk"/>'s backward of micro-batch <paramref name="micro"/>: each source's contributions become a leaf of its tree.</summary>
    public void Complete(ModelChunk chunk, int micro)
    {
        if (!_byChunk.TryGetValue(chunk.Index, out var part)) return;
        for (var source = 0; source < _sources; source++)
        {
            part.Trees[source].Add(micro, part.Current[source] ?? Rent(part));
            part.Current[source] = null;
        }
    }

    /// <summary>Writes each chunk's hosted experts' block sum (the sources' sums combined in the tree) into their slices of <paramref name="target"/>.</summary>
    /// <param name="slice">Where a gradient key sits in the stage's flat buffer.</param>
    public void WriteInto(Tensor target, Func<ModelChunk, string, (long Offset, long Length)> slice)
    {
        using var scope = NewDisposeScope();
        foreach (var part in _byChunk.Values)
        {
            var sums = part.Trees.Select(t => t.Sum).ToList();
            var total = PairwiseTree.Reduce(0, sums.Count, s => sums[s], (a, b) => a.add_(b, alpha: One));
            foreach (var (key, offset, length) in part.Slices)
            {
                var at = slice(part.Chunk, key);
                target.narrow(0, at.Offset, length).copy_(total.narrow(0, offset, length));
            }
            foreach (var sum in sums) part.Free.Push(sum);
        }
    }

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
