using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Sharded;

/// <summary>
/// ZeRO 3's parameters: a rank keeps only the parameters it owns (in the optimizer's buffer); every other parameter is a
/// placeholder of its shape over a single value. A unit of the model (the embeddings, a layer, the head) is gathered just
/// before it runs, forward or (run again) backward: each rank contributes its owned parameters of the unit, the unit is
/// all-gathered over the data-parallel group into a scratch buffer, and the unit's parameters point into it until the
/// unit is done; then owned ones go home and the others back to their placeholders. While a unit runs, the gather of the
/// unit that runs next is already on the wire (prefetch). Every rank of the group gathers the same units in the same
/// order (they run the same schedule), so the gathers pair up, and at most one is in flight at a time.
/// </summary>
internal sealed class ParameterGather : IDisposable
{
    private readonly OptimizerPartition _partition;
    private readonly Func<string, IReadOnlyList<ModelParameter>> _units;
    private readonly Dictionary<Parameter, (Tensor? Home, Tensor Placeholder)> _rest = [];
    private readonly Dictionary<Parameter, Tensor> _aliases;
    private (Communicator Replicas, HostWire Wire)? _group;
    // One scratch buffer kept for the units a step gathers one at a time, sized for the largest so far.
    private Tensor? _scratch;
    private bool _scratchInUse;
    private Prefetch? _prefetch;
    private byte[] _prefetchWire = [];

    /// <param name="held">The stage's parameters; those <paramref name="rank"/> owns must already live in the optimizer's buffer.</param>
    /// <param name="aliases">Leaves that share a parameter's storage (the head's over a tied embedding) and follow it wherever it goes.</param>
    /// <param name="units">The parameters of a unit, by name.</param>
    public ParameterGather(IReadOnlyList<ModelParameter> held, OptimizerPartition partition, int rank, Device device,
        IReadOnlyList<(Parameter Parameter, Tensor Alias)> aliases, Func<string, IReadOnlyList<ModelParameter>> units)
    {
        _partition = partition;
        _units = units;
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

    /// <summary>Bytes of the scratch buffer and the prefetch's wire buffer.</summary>
    public long ScratchBytes => (_scratch?.numel() ?? 0) * sizeof(float) + _prefetchWire.Length;

    /// <summary>Gathers <paramref name="unit"/>'s parameters and starts gathering <paramref name="next"/>'s; disposing the result releases them.</summary>
    /// <param name="keep">Keep the scratch buffer for the next unit (a step's units); false for a one-off gather of everything.</param>
    public IDisposable Enter(string unit, string? next, bool keep)
    {
        var (replicas, wire) = _group ?? throw new InvalidOperationException("ZeRO 3 gathers parameters over the data-parallel group, which this trainer has not joined");
        var layout = LayoutOf(unit, replicas.WorldSize);
        var (scratch, kept) = Rent(layout.Total, keep);
        using var noGrad = no_grad();
        if (Take(unit) is { } gathered) CopyIn(gathered.Span, scratch);
        else
        {
            using (var scope = NewDisposeScope())
                for (var i = 0; i < layout.Shards.Count; i++)
                    if (_rest[layout.Shards[i]].Home is { } home) scratch.narrow(0, layout.Offsets[i], home.numel()).copy_(home.reshape(-1));
            wire.Run(scratch, w => replicas.AllGatherParts(w, layout.Parts));
        }
        for (var i = 0; i < layout.Shards.Count; i++)
        {
            using var view = scratch.narrow(0, layout.Offsets[i], layout.Shards[i].numel()).view(layout.Shards[i].shape);
            Point(layout.Shards[i], view);
        }
        if (next is not null) Start(next, replicas);
        return new Gathered(this, layout.Shards, scratch, kept);
    }

    /// <summary>Waits for a gather still in flight and drops it: nothing else may run on the group before it ends.</summary>
    public void Drain() => Take(null);

    /// <summary>The prefetched bytes of <paramref name="unit"/>, or null; a prefetch of another unit is waited for and dropped.</summary>
    private Memory<byte>? Take(string? unit)
    {
        if (_prefetch is not { } prefetch) return null;
        _prefetch = null;
        prefetch.Gathered.GetAwaiter().GetResult();
        return prefetch.Unit == unit ? prefetch.Wire : null;
    }

    /// <summary>Starts the all-gather of <paramref name="unit"/> into the prefetch's wire buffer, this rank's parameters copied in first.</summary>
    private void Start(string unit, Communicator replicas)
    {
        var layout = LayoutOf(unit, replicas.WorldSize);
        var bytes = (int)layout.Total * sizeof(float);
        if (_prefetchWire.Length < bytes) _prefetchWire = new byte[bytes];
        var wire = _prefetchWire.AsMemory(0, bytes);
        using (var scope = NewDisposeScope())
            for (var i = 0; i < layout.Shards.Count; i++)
                if (_rest[layout.Shards[i]].Home is { } home)
                    home.reshape(-1).cpu().bytes.CopyTo(wire.Span[(int)(layout.Offsets[i] * sizeof(float))..]);
        _prefetch = new Prefetch(unit, wire, replicas.AllGatherPartsAsync(wire, layout.Parts));
    }

    private static void CopyIn(ReadOnlySpan<byte> bytes, Tensor scratch)
    {
        if (scratch.device_type == TorchSharp.DeviceType.CPU)
        {
            bytes.CopyTo(scratch.bytes);
            return;
        }
        using var host = empty(scratch.shape, dtype: scratch.dtype);
        bytes.CopyTo(host.bytes);
        scratch.copy_(host);
    }

    /// <summary>Where each of the unit's shards sits in its scratch buffer, and which runs each rank provides.</summary>
    private Layout LayoutOf(string unit, int ranks)
    {
        var shards = _units(unit).SelectMany(p => p.Local.Select(s => (Owner: _partition.OwnerOf(p.Name), Shard: s))).ToList();
        var offsets = new long[shards.Count];
        var runs = Enumerable.Range(0, ranks).Select(_ => new List<(int Offset, int Count)>()).ToArray();
        long total = 0;
        for (var i = 0; i < shards.Count; i++)
        {
            offsets[i] = total;
            var (at, n) = ((int)total, (int)shards[i].Shard.numel());
            var mine = runs[shards[i].Owner];
            if (mine.Count > 0 && mine[^1].Offset + mine[^1].Count == at) mine[^1] = (mine[^1].Offset, mine[^1].Count + n);
            else mine.Add((at, n));
            total += n;
        }
        return new Layout(shards.Select(s => s.Shard).ToList(), offsets, total, new BufferParts(runs));
    }

    /// <summary>Makes <paramref name="shard"/> (and any alias of it) a view of <paramref name="storage"/>'s memory (called without grad).</summary>
    private void Point(Parameter shard, Tensor storage)
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

    private void Release(IReadOnlyList<Parameter> shards, Tensor scratch, bool kept)
    {
        using (no_grad())
            foreach (var shard in shards) Point(shard, _rest[shard].Home ?? _rest[shard].Placeholder);
        scratch.Dispose();
        if (kept) _scratchInUse = false;
    }

    public void Dispose()
    {
        try
        {
            Drain();
        }
        catch (CollectiveException)
        {
            // The group failed; its error was or will be reported by the step.
        }
        _scratch?.Dispose();
        foreach (var (home, placeholder) in _rest.Values)
        {
            home?.Dispose();
            placeholder.Dispose();
        }
    }

    private sealed record Layout(IReadOnlyList<Parameter> Shards, long[] Offsets, long Total, BufferParts Parts);

    private sealed record Prefetch(string Unit, Memory<byte> Wire, Task Gathered);

    private sealed class Gathered(ParameterGather gather, IReadOnlyList<Parameter> shards, Tensor scratch, bool kept) : IDisposable
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
