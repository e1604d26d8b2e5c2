using Elastic.Training.Engine;
using TorchSharp;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Collectives;

/// <summary>
/// Collectives over tensors of any dtype. A device thread of this process (<see cref="ITensorLink"/>) is lent the tensor
/// where it lies and reads it in place (on CUDA across devices, one device-to-device copy), then says it is done: no host
/// round-trip, no serialization, no copy on the sender. Another process gets it over the group's device transport (NCCL)
/// where it has one, else as host bytes in a frame. Either way the receiver adds in torch ops on its own device, in the
/// canonical pairwise tree over the ranks, into buffers of its own, so every transport gives the same bits and no caller's
/// tensor is written.
/// </summary>
public sealed partial class Communicator
{
    /// <summary>Buffers kept from call to call on this rank's device thread: slot 0 a rank's chunk of an in-place sum, then the tree's scratch by depth.</summary>
    private readonly List<Tensor?> _kept = [];

    /// <summary>Host frames kept per peer and direction for peers in other processes: a step sends the same sizes every time.</summary>
    private readonly Dictionary<(int Peer, bool Outgoing), byte[]> _frames = [];

    /// <summary>
    /// Page-locked host copies of device tensors on their way into or out of a frame, one per dtype and size: a frame is
    /// managed memory (a failing socket may still write into it), and the device reaches it through these by DMA.
    /// </summary>
    private readonly PinnedHostCopies<(ScalarType, long)> _pinned = new();

    /// <summary>Bytes of the buffers this rank keeps from call to call for tensor collectives: sums and scratch on its device, host frames and their pinned copies.</summary>
    public long KeptBytes => _kept.Sum(t => t is null ? 0 : t.NumberOfElements * t.ElementSize) + _frames.Values.Sum(f => f.LongLength) + _pinned.Bytes;

    /// <summary>The tree sum over the ranks of <paramref name="local"/> (one shape and dtype on every rank), whole on every rank.</summary>
    public Tensor TensorAllReduceSum(Tensor local)
    {
        using var scope = NewDisposeScope();
        var flat = Flat(local);
        var chunks = Chunks(flat);
        var whole = empty_like(flat);
        ReduceRunsInto([flat], OnePerRank, chunks, Chunk(whole, chunks, Rank));
        TensorAllGatherParts(whole, chunks);
        return whole.view(local.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="TensorAllReduceSum"/> written over <paramref name="local"/> itself, for a caller that owns it: no result to
    /// allocate (fresh large memory costs its page faults on every call).
    /// </summary>
    public void TensorAllReduceSumInPlace(Tensor local) => TensorAllReduceSumInPlace([local], OnePerRank);

    /// <summary>
    /// The tree sum of the ranks' pieces of <paramref name="blocks"/> (this rank's <paramref name="pieces"/>, flat and contiguous,
    /// of one size and dtype, in the order of <see cref="ReplicaBlocks.PiecesOf"/>) over the blocks' leaves, written over
    /// <paramref name="pieces"/>[0] on every rank: the data-parallel gradient sum, with the bits of the byte collective and of
    /// one device. The other pieces are the caller's scratch afterwards.
    /// </summary>
    public void TensorAllReduceSumInPlace(IReadOnlyList<Tensor> pieces, ReplicaBlocks blocks)
    {
        var chunks = Chunks(pieces[0]);
        TensorReduceScatterSumInPlace(pieces, blocks, chunks);
        TensorAllGatherParts(pieces[0], chunks);
    }

    /// <summary>
    /// The tree sum of the ranks' pieces of <paramref name="blocks"/> over the blocks' leaves, for the runs this rank owns in
    /// <paramref name="parts"/> only, written over those runs of <paramref name="pieces"/>[0] (ZeRO's gradient reduce-scatter);
    /// the rest is left as it was. The runs' own values are leaves of their sum, so it waits in a kept buffer until every peer
    /// is done reading.
    /// </summary>
    public void TensorReduceScatterSumInPlace(IReadOnlyList<Tensor> pieces, ReplicaBlocks blocks, BufferParts parts)
    {
        if (blocks.Ranks != WorldSize) throw new ArgumentException($"blocks of {blocks.Ranks} ranks in a group of {WorldSize}", nameof(blocks));
        if (pieces.Count != blocks.PiecesOf(Rank).Count)
            throw new ArgumentException($"rank {Rank} holds {blocks.PiecesOf(Rank).Count} piece(s) of its block, not {pieces.Count}", nameof(pieces));
        if (pieces.Any(p => !p.is_contiguous() || p.NumberOfElements != pieces[0].NumberOfElements || p.dtype != pieces[0].dtype))
            throw new ArgumentException("an in-place reduction needs contiguous pieces of one size and dtype", nameof(pieces));
        CheckParts(pieces[0].NumberOfElements, parts);
        using var scope = NewDisposeScope();
        var flats = pieces.Select(p => p.detach().view(-1)).ToList();
        var sum = Kept(0, flats[0].narrow(0, 0, parts.CountOf(Rank)));
        ReduceRunsInto(flats, blocks, parts, sum);
        var at = 0;
        foreach (var run in Runs(flats[0], parts, Rank))
        {
            run.copy_(sum.narrow(0, at, run.NumberOfElements));
            at += (int)run.NumberOfElements;
        }
    }

    /// <summary>Fills every rank's runs of <paramref name="flat"/> (in <paramref name="parts"/>) from that rank, this rank's lent to its peers.</summary>
    public void TensorAllGatherParts(Tensor flat, BufferParts parts)
    {
        CheckParts(flat.NumberOfElements, parts);
        using var scope = NewDisposeScope();
        var values = flat.detach().view(-1);
        var received = ExchangeTensors("all-gather", _ => Runs(values, parts, Rank), p => Runs(values, parts, p));
        try
        {
            foreach (var p in Others())
                foreach (var (run, i) in Runs(values, parts, p).Select((run, i) => (run, i))) run.copy_(received[p]![i]);
        }
        finally
        {
            Consumed("all-gather", received);
        }
    }

    /// <summary>Every rank one leaf: the tree over the ranks.</summary>
    private ReplicaBlocks OnePerRank => _onePerRank ??= ReplicaBlocks.OnePerRank(WorldSize);

    private ReplicaBlocks? _onePerRank;

    /// <summary>This rank's rows of the tree sum over the ranks: rank r gets rows [r·n/W, (r+1)·n/W) of the n rows (a reduce-scatter).</summary>
    public Tensor TensorReduceScatterSum(Tensor local)
    {
        var rows = local.shape[0];
        if (rows % WorldSize != 0) throw new ArgumentException($"{rows} rows do not split among {WorldSize} ranks", nameof(local));
        using var scope = NewDisposeScope();
        var flat = Flat(local);
        var shape = local.shape.ToArray();
        shape[0] = rows / WorldSize;
        var sum = empty(shape, dtype: local.dtype, device: local.device);
        ReduceRunsInto([flat], OnePerRank, Chunks(flat), sum.view(-1));
        return sum.MoveToOuterDisposeScope();
    }

    /// <summary>Every rank's <paramref name="part"/> (one shape and dtype on every rank), concatenated along dimension 0 in rank order.</summary>
    public Tensor TensorAllGather(Tensor part)
    {
        using var scope = NewDisposeScope();
        var mine = part.detach().contiguous();
        var received = ExchangeTensors("all-gather", _ => [mine], _ => [mine]);
        try
        {
            return cat(Enumerable.Range(0, WorldSize).Select(r => r == Rank ? mine : received[r]![0]).ToList(), 0).MoveToOuterDisposeScope();
        }
        finally
        {
            Consumed("all-gather", received);
        }
    }

    /// <summary>
    /// Sums the runs this rank owns in <paramref name="parts"/> of the ranks' pieces (<paramref name="flats"/>: this rank's), each
    /// in the tree over <paramref name="blocks"/>' leaves, into <paramref name="target"/>, the runs one after another: every peer
    /// sends it those runs of each of its pieces.
    /// </summary>
    private void ReduceRunsInto(IReadOnlyList<Tensor> flats, ReplicaBlocks blocks, BufferParts parts, Tensor target)
    {
        var own = flats.Select(f => Runs(f, parts, Rank)).ToList();
        var runs = own[0].Count;
        var received = ExchangeTensors("reduce-scatter", p => [.. flats.SelectMany(f => Runs(f, parts, p))], p => [.. blocks.PiecesOf(p).SelectMany(_ => own[0])]);
        try
        {
            var at = 0L;
            for (var i = 0; i < runs; i++)
            {
                var length = own[0][i].NumberOfElements;
                SumInto(blocks, 0, blocks.Leaves, target.narrow(0, at, length), (r, k) => r == Rank ? own[k][i] : received[r]![k * runs + i]);
                at += length;
            }
        }
        finally
        {
            Consumed("reduce-scatter", received);
        }
    }

    /// <summary><paramref name="rank"/>'s runs of <paramref name="flat"/> in <paramref name="parts"/>, as views.</summary>
    private static List<Tensor> Runs(Tensor flat, BufferParts parts, int rank) => [.. parts.Of(rank).Select(run => flat.narrow(0, run.Offset, run.Count))];

    /// <summary>
    /// The pairwise tree over leaves [lo, hi) of <paramref name="blocks"/> into <paramref name="target"/>, never into a piece
    /// (pieces are the caller's or lent): a right subtree that is not one piece is summed into a scratch buffer of its depth
    /// first. The additions of <see cref="ReplicaBlocks.Reduce{T}"/>, node by node; not <see cref="PairwiseTree.ReduceInto"/>,
    /// whose leaves are computed into buffers: these exist already, so a right piece is added where it lies.
    /// </summary>
    private void SumInto(ReplicaBlocks blocks, int lo, int hi, Tensor target, Func<int, int, Tensor> piece, int depth = 0)
    {
        if (blocks.PieceAt(lo, hi - lo) is { } whole)
        {
            target.copy_(piece(whole.Rank, whole.Index));
            return;
        }
        var mid = PairwiseTree.Split(lo, hi);
        SumInto(blocks, lo, mid, target, piece, depth + 1);
        if (blocks.PieceAt(mid, hi - mid) is { } right)
        {
            target.add_(piece(right.Rank, right.Index), alpha: One);
            return;
        }
        var scratch = Kept(1 + depth, target);
        SumInto(blocks, mid, hi, scratch, piece, depth + 1);
        target.add_(scratch, alpha: One);
    }

    /// <summary>
    /// A flat buffer with <paramref name="like"/>'s elements, dtype and device, kept in <paramref name="slot"/> from call to call
    /// (a step sums same-sized tensors; fresh large memory costs its page faults every time). Only this rank's device thread uses it.
    /// </summary>
    private Tensor Kept(int slot, Tensor like)
    {
        while (_kept.Count <= slot) _kept.Add(null);
        if (_kept[slot] is { } kept && kept.dtype == like.dtype && kept.device_type == like.device_type && kept.device_index == like.device_index
            && kept.NumberOfElements >= like.NumberOfElements)
            return kept.narrow(0, 0, like.NumberOfElements);
        _kept[slot]?.Dispose();
        using var scope = NewDisposeScope();
        return (_kept[slot] = empty(like.NumberOfElements, dtype: like.dtype, device: like.device).DetachFromDisposeScope())!;
    }

    /// <summary>
    /// Sends the tensors <paramref name="outgoing"/>(p) to every peer p (they stay unchanged until <see cref="Consumed"/>) and
    /// receives from each tensors shaped like <paramref name="like"/>(p), on this rank's device, to read and not write.
    /// </summary>
    private Tensor[]?[] ExchangeTensors(string collective, Func<int, IReadOnlyList<Tensor>> outgoing, Func<int, IReadOnlyList<Tensor>> like)
    {
        // Frames for other processes are copied here, on the calling (device) thread; device threads of this process are lent
        // views. Lending never waits, so every rank reaches the device transport's exchange, which does wait, before any frames.
        var overDevice = Others().Where(p => OverDevice(p, outgoing(p), like(p))).ToHashSet();
        var incoming = new object?[WorldSize];
        try
        {
            var sends = Others().Where(p => !overDevice.Contains(p))
                .Select(p => new PeerOperation(p, Link(p) is ITensorLink link ? Lend(p, link, outgoing(p)) : Frame(p, outgoing(p)))).ToArray();
            var frames = Others().ToDictionary(p => p, p => Link(p) is ITensorLink || overDevice.Contains(p) ? (Memory<byte>?)null : KeptFrame(p, outgoing: false, like(p)));
            var receives = Others().Where(p => !overDevice.Contains(p))
                .Select(p => new PeerOperation(p, async ct => incoming[p] = await ReceiveTensors(p, like(p), frames[p], ct).ConfigureAwait(false))).ToArray();
            if (overDevice.Count > 0) ExchangeOnDevice(overDevice, outgoing, like, incoming);
            Exchange(collective, [.. sends, .. receives]);
        }
        catch (Exception e)
        {
            foreach (var tensor in incoming.OfType<Tensor?[]>().SelectMany(t => t)) tensor?.Dispose();
            // As in Exchange: a group out of step is never used again, and its peers fail at once. A peer lost while this
            // rank lent it tensors (its link closed) fails the collective like any lost peer, never as the rank's own error.
            CloseLinks();
            if (e is PeerLostException) throw Failed(collective, e);
            throw;
        }
        return [.. Enumerable.Range(0, WorldSize).Select(p => incoming[p] switch
        {
            Tensor[] lent => [.. lent.Select((tensor, k) => OnDeviceOf(tensor, like(p)[k]))],
            Memory<byte> bytes => FromHost(bytes, like(p)),
            _ => null,
        })];
    }

    /// <summary>
    /// Whether <paramref name="peer"/>'s tensors go over the device transport: a rank of another process, and every tensor either
    /// way on the transport's device. Both ends decide alike, since every rank of a group keeps its tensors on its device.
    /// </summary>
    private bool OverDevice(int peer, IReadOnlyList<Tensor> outgoing, IReadOnlyList<Tensor> like) =>
        _deviceTransport is { } transport && Link(peer) is not ITensorLink && outgoing.All(transport.Carries) && like.All(transport.Carries);

    /// <summary>The device transport's part of an exchange: into fresh tensors on this rank's device, which are the receiver's to dispose.</summary>
    private void ExchangeOnDevice(IReadOnlySet<int> peers, Func<int, IReadOnlyList<Tensor>> outgoing, Func<int, IReadOnlyList<Tensor>> like, object?[] incoming)
    {
        using var scope = NewDisposeScope();
        var sends = peers.SelectMany(p => outgoing(p).Select(t => (p, t.detach().contiguous()))).ToList();
        foreach (var p in peers) incoming[p] = like(p).Select(t => empty(t.shape, dtype: t.dtype, device: t.device).DetachFromDisposeScope()).ToArray();
        var receives = peers.SelectMany(p => ((Tensor[])incoming[p]!).Select(into => (p, into))).ToList();
        _deviceTransport!.Exchange(sends, receives, Timeout);
    }

    /// <summary>
    /// Lets go of what <see cref="ExchangeTensors"/> received and waits until every device thread this rank lent to is done
    /// reading (frames were copies: nothing to wait for), so the caller may change its tensors again.
    /// </summary>
    private void Consumed(string collective, Tensor[]?[] received)
    {
        foreach (var tensor in received.SelectMany(r => r ?? [])) tensor.Dispose();
        var lenders = Others().Where(p => Link(p) is ITensorLink).ToArray();
        if (lenders.Length == 0) return;
        var done = lenders.ToDictionary(p => p, p => _sent[p]++);
        Exchange($"{collective} (done)", [.. lenders.Select(p => new PeerOperation(p, async ct =>
        {
            var link = (ITensorLink)Link(p);
            link.Done(done[p]);
            var (sequence, lent) = await link.ReceiveLentAsync(ct).ConfigureAwait(false);
            var expected = _received[p]++;
            lent?.Dispose();
            if (sequence != expected || lent is not null)
                throw new CollectiveException($"{Group}: rank {p} sent message {sequence}{(lent is null ? "" : ", a tensor")}; rank {Rank} expected message {expected}, that it was done reading (the ranks disagree on the sequence of collectives)");
        }))]);
    }

    private Func<CancellationToken, Task> Lend(int peer, ITensorLink link, IReadOnlyList<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        foreach (var tensor in tensors) link.Lend(_sent[peer]++, tensor.detach().DetachFromDisposeScope());
        return _ => Task.CompletedTask;
    }

    /// <summary>One frame for <paramref name="peer"/> with the tensors' bytes one after another.</summary>
    private Func<CancellationToken, Task> Frame(int peer, IReadOnlyList<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        var bytes = KeptFrame(peer, outgoing: true, tensors);
        var at = 0;
        foreach (var tensor in tensors)
        {
            var host = (tensor.device_type == DeviceType.CPU ? tensor.detach().contiguous() : _pinned.CopyOut((tensor.dtype, tensor.NumberOfElements), tensor)).bytes;
            host.CopyTo(bytes.Span[at..]);
            at += host.Length;
        }
        return ct => SendFrame(peer, bytes, ct);
    }

    /// <summary>
    /// A frame for <paramref name="peer"/> in one direction, sized for <paramref name="like"/>, at the start of a buffer kept at the
    /// largest size so far (made on the calling thread): a step's collectives, the runs of a gradient among them, reuse it.
    /// </summary>
    private Memory<byte> KeptFrame(int peer, bool outgoing, IReadOnlyList<Tensor> like)
    {
        var length = checked((int)like.Sum(t => t.NumberOfElements * t.ElementSize));
        if (!_frames.TryGetValue((peer, outgoing), out var kept) || kept.Length < length) _frames[(peer, outgoing)] = kept = new byte[length];
        return kept.AsMemory(0, length);
    }

    /// <summary>The lent tensors, or a frame's bytes in <paramref name="frame"/> (made into tensors on the device thread afterwards).</summary>
    private async Task<object> ReceiveTensors(int peer, IReadOnlyList<Tensor> like, Memory<byte>? frame, CancellationToken cancellation)
    {
        if (Link(peer) is not ITensorLink link)
        {
            await ReceiveFrame(peer, frame!.Value, cancellation).ConfigureAwait(false);
            return frame.Value;
        }
        var received = new Tensor[like.Count];
        try
        {
            for (var k = 0; k < like.Count; k++)
            {
                var (sequence, lent) = await link.ReceiveLentAsync(cancellation).ConfigureAwait(false);
                var expected = _received[peer]++;
                if (sequence == expected && lent is not null && lent.dtype == like[k].dtype && lent.shape.SequenceEqual(like[k].shape))
                {
                    received[k] = lent;
                    continue;
                }
                var got = lent is null ? $"message {sequence}, that it was done reading" : $"message {sequence}, a {lent.dtype} tensor of [{string.Join(", ", lent.shape)}]";
                lent?.Dispose();
                throw new CollectiveException($"{Group}: rank {peer} sent {got}; rank {Rank} expected message {expected}, a {like[k].dtype} tensor of [{string.Join(", ", like[k].shape)}] (the ranks disagree on the sequence of collectives)");
            }
            return received;
        }
        catch
        {
            foreach (var tensor in received) tensor?.Dispose();
            throw;
        }
    }

    /// <summary>A lent tensor on <paramref name="like"/>'s device: itself, or a copy there (its lent handle let go at once).</summary>
    private static Tensor OnDeviceOf(Tensor lent, Tensor like)
    {
        if (lent.device_type == like.device_type && lent.device_index == like.device_index) return lent;
        using var scope = NewDisposeScope();
        var moved = lent.to(like.device).DetachFromDisposeScope();
        lent.Dispose();
        return moved;
    }

    /// <summary>A frame's tensors, shaped like <paramref name="like"/> one after another, on their devices (a device's through its pinned copy).</summary>
    private Tensor[] FromHost(Memory<byte> bytes, IReadOnlyList<Tensor> like)
    {
        using var scope = NewDisposeScope();
        var tensors = new Tensor[like.Count];
        var at = 0;
        for (var k = 0; k < like.Count; k++)
        {
            var t = like[k];
            var onCpu = t.device_type == DeviceType.CPU;
            var host = onCpu ? empty(t.shape, dtype: t.dtype) : _pinned.For((t.dtype, t.NumberOfElements), t);
            var length = (int)(t.NumberOfElements * t.ElementSize);
            host.bytes = bytes.Span.Slice(at, length);
            at += length;
            // The copy to the device finishes before the next tensor reuses the pinned one (a blocking copy).
            tensors[k] = (onCpu ? host : host.view(t.shape).to(t.device)).DetachFromDisposeScope();
        }
        return tensors;
    }

    private static Tensor Flat(Tensor t) => t.detach().contiguous().reshape(-1);

    private BufferParts Chunks(Tensor flat) => BufferParts.Even(checked((int)flat.NumberOfElements), WorldSize);

    private static Tensor Chunk(Tensor flat, BufferParts chunks, int rank)
    {
        var (offset, count) = chunks.Of(rank)[0];
        return flat.narrow(0, offset, count);
    }
}
