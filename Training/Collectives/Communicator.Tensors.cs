using Elastic.Training.Engine;
using TorchSharp;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Collectives;

/// <summary>
/// Collectives over tensors of any dtype. A device thread of this process (<see cref="ITensorLink"/>) is lent the tensor
/// where it lies and reads it in place (on CUDA across devices, one device-to-device copy), then says it is done: no host
/// round-trip, no serialization, no copy on the sender. Another process gets it as host bytes in a frame. Either way the
/// receiver adds in torch ops on its own device, in the canonical pairwise tree over the ranks, into buffers of its own,
/// so every transport gives the same bits and no caller's tensor is written.
/// </summary>
public sealed partial class Communicator
{
    /// <summary>Buffers kept from call to call on this rank's device thread: slot 0 a rank's chunk of an in-place sum, then the tree's scratch by depth.</summary>
    private readonly List<Tensor?> _kept = [];

    /// <summary>Host frames kept per peer and direction for peers in other processes: a step sends the same sizes every time.</summary>
    private readonly Dictionary<(int Peer, bool Outgoing), byte[]> _frames = [];

    /// <summary>The tree sum over the ranks of <paramref name="local"/> (one shape and dtype on every rank), whole on every rank.</summary>
    public Tensor TensorAllReduceSum(Tensor local)
    {
        using var scope = NewDisposeScope();
        var flat = Flat(local);
        var chunks = Chunks(flat);
        var whole = empty_like(flat);
        var mine = Chunk(whole, chunks, Rank);
        ReduceChunkInto(flat, chunks, mine);
        GatherChunks(whole, chunks);
        return whole.view(local.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="TensorAllReduceSum"/> written over <paramref name="local"/> itself, for a caller that owns it: no result to
    /// allocate (fresh large memory costs its page faults on every call). Peers read this rank's chunk of the input until the
    /// reduce-scatter's done round; only then is the chunk's sum, kept aside meanwhile, written over it.
    /// </summary>
    public void TensorAllReduceSumInPlace(Tensor local)
    {
        if (!local.is_contiguous()) throw new ArgumentException("an in-place all-reduce needs a contiguous tensor", nameof(local));
        using var scope = NewDisposeScope();
        var flat = local.detach().view(-1);
        var chunks = Chunks(flat);
        var mine = Chunk(flat, chunks, Rank);
        var sum = Kept(0, mine);
        ReduceChunkInto(flat, chunks, sum);
        mine.copy_(sum);
        GatherChunks(flat, chunks);
    }

    /// <summary>The all-gather half of an all-reduce: every peer's chunk of the sum into <paramref name="whole"/>, this rank's lent to them.</summary>
    private void GatherChunks(Tensor whole, BufferParts chunks)
    {
        var mine = Chunk(whole, chunks, Rank);
        var received = ExchangeTensors("all-gather", _ => mine, p => Chunk(whole, chunks, p));
        try
        {
            foreach (var p in Others()) Chunk(whole, chunks, p).copy_(received[p]!);
        }
        finally
        {
            Consumed("all-gather", received);
        }
    }

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
        ReduceChunkInto(flat, Chunks(flat), sum.view(-1));
        return sum.MoveToOuterDisposeScope();
    }

    /// <summary>Every rank's <paramref name="part"/> (one shape and dtype on every rank), concatenated along dimension 0 in rank order.</summary>
    public Tensor TensorAllGather(Tensor part)
    {
        using var scope = NewDisposeScope();
        var mine = part.detach().contiguous();
        var received = ExchangeTensors("all-gather", _ => mine, _ => mine);
        try
        {
            return cat(Enumerable.Range(0, WorldSize).Select(r => r == Rank ? mine : received[r]!).ToList(), 0).MoveToOuterDisposeScope();
        }
        finally
        {
            Consumed("all-gather", received);
        }
    }

    /// <summary>Sums this rank's chunk over the ranks into <paramref name="target"/>: every peer sends it its piece of that chunk.</summary>
    private void ReduceChunkInto(Tensor flat, BufferParts chunks, Tensor target)
    {
        var own = Chunk(flat, chunks, Rank);
        var received = ExchangeTensors("reduce-scatter", p => Chunk(flat, chunks, p), _ => own);
        try
        {
            SumInto(0, WorldSize, target, r => r == Rank ? own : received[r]!);
        }
        finally
        {
            Consumed("reduce-scatter", received);
        }
    }

    /// <summary>
    /// The pairwise tree over leaves [lo, hi) into <paramref name="target"/>, never into a leaf (leaves are the caller's or
    /// lent): a right subtree of more than one leaf is summed into a scratch buffer of its depth first. Not
    /// <see cref="PairwiseTree.ReduceInto"/>, whose leaves are computed into buffers: these exist already, so a single right
    /// leaf is added where it lies instead of being copied into scratch first.
    /// </summary>
    private void SumInto(int lo, int hi, Tensor target, Func<int, Tensor> leaf, int depth = 0)
    {
        if (hi - lo == 1)
        {
            target.copy_(leaf(lo));
            return;
        }
        var mid = PairwiseTree.Split(lo, hi);
        SumInto(lo, mid, target, leaf, depth + 1);
        if (hi - mid == 1)
        {
            target.add_(leaf(mid), alpha: One);
            return;
        }
        var right = Kept(1 + depth, target);
        SumInto(mid, hi, right, leaf, depth + 1);
        target.add_(right, alpha: One);
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
    /// Sends <paramref name="outgoing"/>(p) to every peer p (it stays unchanged until <see cref="Consumed"/>) and receives from
    /// each a tensor shaped like <paramref name="like"/>(p), on this rank's device, to read and not write.
    /// </summary>
    private Tensor?[] ExchangeTensors(string collective, Func<int, Tensor> outgoing, Func<int, Tensor> like)
    {
        // Frames for other processes are copied here, on the calling (device) thread; device threads of this process are lent views.
        var sends = Others().Select(p => new PeerOperation(p, Link(p) is ITensorLink link ? Lend(p, link, outgoing(p)) : Frame(p, outgoing(p)))).ToArray();
        var incoming = new object?[WorldSize];
        var frames = Others().ToDictionary(p => p, p => Link(p) is ITensorLink ? null : KeptFrame(p, outgoing: false, like(p)));
        var receives = Others().Select(p => new PeerOperation(p, async ct => incoming[p] = await ReceiveTensor(p, like(p), frames[p], ct).ConfigureAwait(false))).ToArray();
        try
        {
            Exchange(collective, [.. sends, .. receives]);
        }
        catch
        {
            foreach (var tensor in incoming.OfType<Tensor>()) tensor.Dispose();
            throw;
        }
        return [.. Enumerable.Range(0, WorldSize).Select(p => incoming[p] switch
        {
            Tensor tensor => OnDeviceOf(tensor, like(p)),
            byte[] bytes => FromHost(bytes, like(p)),
            _ => null,
        })];
    }

    /// <summary>
    /// Lets go of what <see cref="ExchangeTensors"/> received and waits until every device thread this rank lent to is done
    /// reading (frames were copies: nothing to wait for), so the caller may change its tensors again.
    /// </summary>
    private void Consumed(string collective, Tensor?[] received)
    {
        foreach (var tensor in received) tensor?.Dispose();
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

    private Func<CancellationToken, Task> Lend(int peer, ITensorLink link, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        link.Lend(_sent[peer]++, tensor.detach().DetachFromDisposeScope());
        return _ => Task.CompletedTask;
    }

    private Func<CancellationToken, Task> Frame(int peer, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var bytes = KeptFrame(peer, outgoing: true, tensor);
        tensor.detach().cpu().contiguous().bytes.CopyTo(bytes);
        return ct => SendFrame(peer, bytes, ct);
    }

    /// <summary>The frame kept for <paramref name="peer"/> in one direction, sized for <paramref name="like"/> (made on the calling thread).</summary>
    private byte[] KeptFrame(int peer, bool outgoing, Tensor like)
    {
        var length = like.NumberOfElements * like.ElementSize;
        if (_frames.TryGetValue((peer, outgoing), out var kept) && kept.LongLength == length) return kept;
        return _frames[(peer, outgoing)] = new byte[length];
    }

    /// <summary>A lent tensor, or a frame's bytes in <paramref name="frame"/> (made into a tensor on the device thread afterwards).</summary>
    private async Task<object> ReceiveTensor(int peer, Tensor like, byte[]? frame, CancellationToken cancellation)
    {
        if (Link(peer) is not ITensorLink link)
        {
            await ReceiveFrame(peer, frame!, cancellation).ConfigureAwait(false);
            return frame!;
        }
        var (sequence, lent) = await link.ReceiveLentAsync(cancellation).ConfigureAwait(false);
        var expected = _received[peer]++;
        if (sequence == expected && lent is not null && lent.dtype == like.dtype && lent.shape.SequenceEqual(like.shape)) return lent;
        var got = lent is null ? $"message {sequence}, that it was done reading" : $"message {sequence}, a {lent.dtype} tensor of [{string.Join(", ", lent.shape)}]";
        lent?.Dispose();
        throw new CollectiveException($"{Group}: rank {peer} sent {got}; rank {Rank} expected message {expected}, a {like.dtype} tensor of [{string.Join(", ", like.shape)}] (the ranks disagree on the sequence of collectives)");
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

    private static Tensor FromHost(byte[] bytes, Tensor like)
    {
        using var scope = NewDisposeScope();
        var host = empty(like.shape, dtype: like.dtype);
        host.bytes = bytes;
        return (like.device_type == DeviceType.CPU ? host : host.to(like.device)).DetachFromDisposeScope();
    }

    private static Tensor Flat(Tensor t) => t.detach().contiguous().reshape(-1);

    private BufferParts Chunks(Tensor flat) => BufferParts.Even(checked((int)flat.NumberOfElements), WorldSize);

    private static Tensor Chunk(Tensor flat, BufferParts chunks, int rank)
    {
        var (offset, count) = chunks.Of(rank)[0];
        return flat.narrow(0, offset, count);
    }
}
