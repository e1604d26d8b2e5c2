using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Sharded;

/// <summary>
/// ZeRO 3's parameters: a rank keeps only the parameters it owns (in the optimizer's buffer); every other parameter is a
/// placeholder of its shape over a single value. A unit of the model (the embeddings, a layer, the head) is gathered just
/// before it runs, forward or (run again) backward: each rank copies its owned parameters of the unit into a scratch
/// buffer, the buffer is all-gathered over the data-parallel group, and the unit's parameters point into it until the unit
/// is done; then owned ones go home and the others back to their placeholders. Every rank of the group gathers the same
/// units in the same order (they run the same schedule), so the gathers pair up.
/// </summary>
internal sealed class ParameterGather : IDisposable
{
    private readonly OptimizerPartition _partition;
    private readonly Dictionary<TorchSharp.Modules.Parameter, (Tensor? Home, Tensor Placeholder)> _rest = [];
    private readonly Dictionary<TorchSharp.Modules.Parameter, Tensor> _aliases;
    // One scratch buffer kept for the units a step gathers one at a time, sized for the largest so far.
    private Tensor? _scratch;
    private bool _scratchInUse;
    private (Communicator Replicas, HostWire Wire)? _group;

    /// <param name="held">The stage's parameters; those <paramref name="rank"/> owns must already live in the optimizer's buffer.</param>
    /// <param name="aliases">Leaves that share a parameter's storage (the head's over a tied embedding) and follow it wherever it goes.</param>
    public ParameterGather(IReadOnlyList<ModelParameter> held, OptimizerPartition partition, int rank, Device device,
        IReadOnlyList<(TorchSharp.Modules.Parameter Parameter, Tensor Alias)> aliases)
    {
        _partition = partition;
        _aliases = aliases.ToDictionary(a => a.Parameter, a => a.Alias);
        using var noGrad = no_grad();
        foreach (var parameter in held)
        {
            var owned = partition.OwnerOf(parameter.Name) == rank;
            foreach (var shard in parameter.Local)
            {
                using var one = zeros(1, dtype: ScalarType.Float32, device: device);
                var placeholder = one.expand(shard.shape).DetachFromDisposeScope();
                _rest[shard] = (owned ? shard.detach().DetachFromDisposeScope() : null, placeholder);
                if (!owned) Point(shard, placeholder);
            }
        }
    }

    /// <summary>The data-parallel group to gather over (joined after the trainer was built), through the group's wire buffer (its collectives run one at a time).</summary>
    public void Connect(Communicator replicas, HostWire wire) => _group = (replicas, wire);

    /// <summary>Bytes of the scratch buffer kept for gathers.</summary>
    public long ScratchBytes => (_scratch?.numel() ?? 0) * sizeof(float);

    /// <summary>Gathers <paramref name="unit"/>'s parameters; disposing the result releases them.</summary>
    /// <param name="keep">Keep the scratch buffer for the next unit (a step's units); false for a one-off gather of everything.</param>
    public IDisposable Enter(IReadOnlyList<ModelParameter> unit, bool keep)
    {
        var (replicas, wire) = _group ?? throw new InvalidOperationException("ZeRO 3 gathers parameters over the data-parallel group, which this trainer has not joined");
        var shards = unit.SelectMany(p => p.Local.Select(s => (Owner: _partition.OwnerOf(p.Name), Shard: s))).ToList();
        var offsets = new long[shards.Count];
        for (var i = 1; i < shards.Count; i++) offsets[i] = offsets[i - 1] + shards[i - 1].Shard.numel();
        var total = shards.Count == 0 ? 0 : offsets[^1] + shards[^1].Shard.numel();
        var (scratch, kept) = Rent(total, keep);
        var runs = Enumerable.Range(0, replicas.WorldSize).Select(_ => new List<(int Offset, int Count)>()).ToArray();
        using var noGrad = no_grad();
        using (var scope = NewDisposeScope())
            for (var i = 0; i < shards.Count; i++)
            {
                var (owner, shard) = shards[i];
                var (at, n) = ((int)offsets[i], (int)shard.numel());
                var mine = runs[owner];
                if (mine.Count > 0 && mine[^1].Offset + mine[^1].Count == at) mine[^1] = (mine[^1].Offset, mine[^1].Count + n);
                else mine.Add((at, n));
                if (_rest[shard].Home is { } home) scratch.narrow(0, at, n).copy_(home.reshape(-1));
            }
        wire.Run(scratch, w => replicas.AllGatherParts(w, new BufferParts(runs)));
        for (var i = 0; i < shards.Count; i++)
        {
            using var view = scratch.narrow(0, offsets[i], shards[i].Shard.numel()).view(shards[i].Shard.shape);
            Point(shards[i].Shard, view);
        }
        return new Gathered(this, shards.Select(s => s.Shard).ToList(), scratch, kept);
    }

    /// <summary>Makes <paramref name="shard"/> (and any alias of it) a view of <paramref name="storage"/>'s memory (called without grad).</summary>
    private void Point(TorchSharp.Modules.Parameter shard, Tensor storage)
    {
        shard.set_(storage);
        if (_aliases.TryGetValue(shard, out var alias)) alias.set_(storage);
    }

    /// <returns>A buffer of <paramref name="elements"/> values, and whether it is (a view of) the kept scratch.</returns>
    private (Tensor Buffer, bool Kept) Rent(long elements, bool keep)
    {
        var device = _rest.Values.First().Placeholder.device;
        if (!keep || _scratchInUse) return (empty(elements, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope(), false);
        if (_scratch is null || _scratch.numel() < elements)
        {
            _scratch?.Dispose();
            _scratch = empty(elements, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        }
        _scratchInUse = true;
        return (_scratch.narrow(0, 0, elements).DetachFromDisposeScope(), true);
    }

    private void Release(IReadOnlyList<TorchSharp.Modules.Parameter> shards, Tensor scratch, bool kept)
    {
        using (no_grad())
            foreach (var shard in shards) Point(shard, _rest[shard].Home ?? _rest[shard].Placeholder);
        scratch.Dispose();
        if (kept) _scratchInUse = false;
    }

    public void Dispose()
    {
        _scratch?.Dispose();
        foreach (var (home, placeholder) in _rest.Values)
        {
            home?.Dispose();
            placeholder.Dispose();
        }
    }

    private sealed class Gathered(ParameterGather gather, IReadOnlyList<TorchSharp.Modules.Parameter> shards, Tensor scratch, bool kept) : IDisposable
    {
        private bool _released;

        public void Dispose()
        {
            if (_released) return;
            _released = true;
            gather.Release(shards, scratch, kept);
        }
    }
}
