using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Elastic.Training.Engine;

namespace Elastic.Training.Collectives;

/// <summary>
/// Collectives among the ranks of one group over point-to-point links. Calls block the calling (device)
/// thread; every call completes or throws <see cref="CollectiveException"/> within <see cref="Timeout"/>,
/// so a dead or stalled peer never hangs a step. Sums are taken in the canonical pairwise tree over rank
/// indices, so every rank gets the same bits as <see cref="Trainer.CombineBlocks"/> on one device.
/// All ranks must issue the same sequence of calls.
/// </summary>
public sealed partial class Communicator : IDisposable
{
    private const int HeaderBytes = 16;
    private readonly IPeerLink?[] _links;
    private readonly long[] _sent;
    private readonly long[] _received;
    private byte[][] _scratch = [];
    // Posted sends per peer, each chained after the previous one so that frames leave in the order they were posted.
    private readonly Task?[] _posted;
    private long _bytesSent;
    private IDeviceTransport? _deviceTransport;

    /// <param name="links">One link per rank, indexed by rank; null at this rank's own index.</param>
    public Communicator(string group, int rank, IPeerLink?[] links, TimeSpan timeout)
    {
        if (rank < 0 || rank >= links.Length) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"not a rank of a group of {links.Length}");
        Group = group;
        Rank = rank;
        Timeout = timeout;
        _links = links;
        _sent = new long[links.Length];
        _received = new long[links.Length];
        _posted = new Task?[links.Length];
    }

    public string Group { get; }
    public int Rank { get; }
    public int WorldSize => _links.Length;
    public TimeSpan Timeout { get; }

    /// <summary>What moves tensors on the device to ranks in other processes (NCCL), or null: frames over the data plane.</summary>
    public IDeviceTransport? DeviceTransport => _deviceTransport;

    /// <summary>
    /// From now on tensors that <paramref name="transport"/> carries go to ranks in other processes over it (this group owns it
    /// and disposes it). Every rank of the group must call this at the same point of its sequence of collectives, or none.
    /// </summary>
    public void CarryTensorsOver(IDeviceTransport transport)
    {
        if (_deviceTransport is not null) throw new InvalidOperationException($"{Group}: rank {Rank} already carries tensors over {_deviceTransport.Name}");
        _deviceTransport = transport;
    }

    /// <summary>Bytes this rank has sent to its peers (frames and their headers), for communication-volume figures.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Element range [offset, offset + count) of the fp32 chunk that <paramref name="rank"/> reduces in <see cref="AllReduceSum(Memory{byte})"/>.</summary>
    public (int Offset, int Count) ChunkOf(int rank, int floats) => BufferParts.Even(floats, WorldSize).Of(rank)[0];

    public void Send(int peer, ReadOnlyMemory<byte> data) => Exchange("send", [new(peer, ct => SendFrame(peer, data, ct))]);

    public void Receive(int peer, Memory<byte> into) => Exchange("receive", [new(peer, ct => ReceiveFrame(peer, into, ct))]);

    /// <summary>
    /// Starts sending <paramref name="data"/> (which must stay unchanged until <see cref="Flush"/>) to <paramref name="peer"/>
    /// without waiting for it, after any earlier posted send to that peer: a pipeline stage goes on computing while its
    /// activations travel, and two stages sending to each other at once never wait on each other.
    /// </summary>
    /// <returns>The send, complete once <paramref name="data"/> has left (its buffer may then be reused).</returns>
    public Task Post(int peer, ReadOnlyMemory<byte> data)
    {
        var previous = _posted[peer] ?? Task.CompletedTask;
        return _posted[peer] = SendAfter(previous, peer, data);
    }

    /// <summary>Waits until every posted send has left (or fails the group like any collective).</summary>
    public void Flush()
    {
        var pending = Enumerable.Range(0, WorldSize).Where(p => _posted[p] is not null).Select(p => (Peer: p, Task: _posted[p]!)).ToList();
        Array.Clear(_posted);
        if (pending.Count > 0) Exchange("send", pending.Select(s => new PeerOperation(s.Peer, ct => s.Task.WaitAsync(ct))).ToArray());
    }

    /// <summary>Copies <paramref name="data"/> from <paramref name="root"/> to every rank.</summary>
    public void Broadcast(Memory<byte> data, int root) => Exchange("broadcast", Rank == root
        ? Others().Select(p => new PeerOperation(p, ct => SendFrame(p, data, ct))).ToArray()
        : [new(root, ct => ReceiveFrame(root, data, ct))]);

    /// <summary>Every rank contributes <paramref name="mine"/>; <paramref name="all"/> receives all contributions in rank order.</summary>
    public void AllGather(ReadOnlyMemory<byte> mine, Memory<byte> all)
    {
        var size = mine.Length;
        if (all.Length != size * WorldSize) throw new ArgumentException($"expected {size * WorldSize} bytes for {WorldSize} ranks of {size}", nameof(all));
        mine.CopyTo(all.Slice(Rank * size, size));
        Exchange("all-gather", Others().SelectMany(p => new PeerOperation[]
        {
            new(p, ct => SendFrame(p, mine, ct)),
            new(p, ct => ReceiveFrame(p, all.Slice(p * size, size), ct)),
        }).ToArray());
    }

    /// <summary>
    /// Each rank sends <paramref name="sends"/>[p] to every peer p and receives peer p's into <paramref name="receives"/>[p], whose
    /// length it must know beforehand (an all-to-all of counts first, when sizes vary); its own slot is copied. Empty
    /// messages are sent too, so every pair exchanges exactly one frame each way.
    /// </summary>
    public void AllToAll(IReadOnlyList<ReadOnlyMemory<byte>> sends, IReadOnlyList<Memory<byte>> receives)
    {
        if (sends.Count != WorldSize || receives.Count != WorldSize)
            throw new ArgumentException($"an all-to-all over {WorldSize} ranks needs {WorldSize} sends and receives, not {sends.Count} and {receives.Count}");
        if (sends[Rank].Length != receives[Rank].Length)
            throw new ArgumentException($"rank {Rank} sends itself {sends[Rank].Length} bytes into a slot of {receives[Rank].Length}", nameof(receives));
        sends[Rank].CopyTo(receives[Rank]);
        Exchange("all-to-all", Others().SelectMany(p => new PeerOperation[]
        {
            new(p, ct => SendFrame(p, sends[p], ct)),
            new(p, ct => ReceiveFrame(p, receives[p], ct)),
        }).ToArray());
    }

    /// <summary>Sums fp32 buffers across ranks: afterwards this rank's chunk (<see cref="ChunkOf"/>) holds the tree sum of that chunk over all ranks.</summary>
    public void ReduceScatterSum(Memory<byte> floats) => ReduceScatterSum(floats, BufferParts.Even(FloatCount(floats), WorldSize));

    /// <summary>
    /// Sums fp32 buffers across ranks: afterwards each run this rank owns in <paramref name="parts"/> holds the tree sum of that
    /// run over all ranks; the rest of the buffer is left as it was (partial sums).
    /// </summary>
    public void ReduceScatterSum(Memory<byte> floats, BufferParts parts) => ReduceScatterSum([floats], ReplicaBlocks.OnePerRank(WorldSize), parts);

    /// <summary>
    /// Sums fp32 buffers that the ranks hold as the pieces of their blocks (<paramref name="pieces"/>: this rank's, in the order
    /// of <see cref="ReplicaBlocks.PiecesOf"/>) in the canonical tree over the blocks' leaves: afterwards each run this rank
    /// owns in <paramref name="parts"/> holds that sum in <paramref name="pieces"/>[0]; the rest is left as it was.
    /// </summary>
    public void ReduceScatterSum(IReadOnlyList<Memory<byte>> pieces, ReplicaBlocks blocks, BufferParts parts)
    {
        if (blocks.Ranks != WorldSize) throw new ArgumentException($"blocks of {blocks.Ranks} ranks in a group of {WorldSize}", nameof(blocks));
        if (pieces.Count != blocks.PiecesOf(Rank).Count)
            throw new ArgumentException($"rank {Rank} holds {blocks.PiecesOf(Rank).Count} piece(s) of its block, not {pieces.Count}", nameof(pieces));
        foreach (var piece in pieces) CheckParts(FloatCount(piece), parts);
        var mine = parts.Of(Rank);
        var received = Scratch(parts.CountOf(Rank) * sizeof(float), blocks);
        var packed = Packed(mine);
        Exchange("reduce-scatter", Others().SelectMany(p => new PeerOperation[]
        {
            new(p, async ct =>
            {
                foreach (var piece in pieces) await SendRuns(p, piece, parts.Of(p), ct).ConfigureAwait(false);
            }),
            new(p, async ct =>
            {
                foreach (var slot in received[p]) await ReceiveRuns(p, slot, packed, ct).ConfigureAwait(false);
            }),
        }).ToArray());
        // This rank's runs of each piece, one after another (in place when there is one); its own scratch slots are free.
        var own = pieces.Select((piece, k) => mine.Count == 1 ? Bytes(piece, mine[0]) : received[Rank][k]).ToArray();
        if (mine.Count != 1)
            for (var k = 0; k < pieces.Count; k++)
                for (var i = 0; i < mine.Count; i++) Bytes(pieces[k], mine[i]).CopyTo(Bytes(own[k], packed[i]));
        var sum = blocks.Reduce((r, k) => r == Rank ? own[k] : received[r][k],
            (left, right) =>
            {
                FloatMath.AddInto(MemoryMarshal.Cast<byte, float>(left.Span), MemoryMarshal.Cast<byte, float>(right.Span));
                return left;
            });
        if (!sum.Equals(own[0])) sum.CopyTo(own[0]);
        if (mine.Count != 1)
            for (var i = 0; i < mine.Count; i++) Bytes(own[0], packed[i]).CopyTo(Bytes(pieces[0], mine[i]));
    }

    /// <summary>Fills every rank's chunk of <paramref name="floats"/> from the rank that owns it (the second half of an all-reduce).</summary>
    public void AllGatherChunks(Memory<byte> floats) => AllGatherParts(floats, BufferParts.Even(FloatCount(floats), WorldSize));

    /// <summary>Fills every rank's runs of <paramref name="floats"/> (in <paramref name="parts"/>) from that rank.</summary>
    public void AllGatherParts(Memory<byte> floats, BufferParts parts) => Exchange("all-gather", AllGatherOperations(floats, parts));

    /// <summary>
    /// <see cref="AllGatherParts"/> without waiting: the caller goes on computing and waits on the task before it reads
    /// <paramref name="floats"/> (which must stay untouched until then) or issues another collective on this group.
    /// </summary>
    public Task AllGatherPartsAsync(Memory<byte> floats, BufferParts parts) => ExchangeAsync("all-gather", AllGatherOperations(floats, parts));

    private PeerOperation[] AllGatherOperations(Memory<byte> floats, BufferParts parts)
    {
        CheckParts(FloatCount(floats), parts);
        return Others().SelectMany(p => new PeerOperation[]
        {
            new(p, ct => SendRuns(p, floats, parts.Of(Rank), ct)),
            new(p, ct => ReceiveRuns(p, floats, parts.Of(p), ct)),
        }).ToArray();
    }

    /// <summary>Sums fp32 buffers across ranks in canonical tree order; every rank ends with identical bits.</summary>
    public void AllReduceSum(Memory<byte> floats) => AllReduceSum([floats], ReplicaBlocks.OnePerRank(WorldSize));

    /// <summary>Sums the ranks' pieces of <paramref name="blocks"/> (see <see cref="ReduceScatterSum(IReadOnlyList{Memory{byte}}, ReplicaBlocks, BufferParts)"/>); every rank ends with identical bits in <paramref name="pieces"/>[0].</summary>
    public void AllReduceSum(IReadOnlyList<Memory<byte>> pieces, ReplicaBlocks blocks)
    {
        ReduceScatterSum(pieces, blocks, BufferParts.Even(FloatCount(pieces[0]), WorldSize));
        AllGatherChunks(pieces[0]);
    }

    /// <summary>Sums one double per rank in canonical tree order (step losses).</summary>
    public double AllReduceSum(double value) => AllReduceSum([value])[0];

    /// <summary>Sums vectors of doubles element by element across ranks in canonical tree order; every rank gets the same bits.</summary>
    public double[] AllReduceSum(double[] values) => AllReduceSum([values], ReplicaBlocks.OnePerRank(WorldSize));

    /// <summary>Sums vectors of doubles (all of one length) that the ranks hold as the pieces of their blocks, in the canonical tree over the leaves.</summary>
    public double[] AllReduceSum(IReadOnlyList<double[]> pieces, ReplicaBlocks blocks)
    {
        var length = pieces[0].Length;
        var slots = blocks.MostPieces;
        var mine = new double[slots * length];
        for (var k = 0; k < pieces.Count; k++) pieces[k].CopyTo(mine, k * length);
        var bytes = MemoryMarshal.AsBytes(mine.AsSpan()).ToArray();
        var all = new byte[bytes.Length * WorldSize];
        AllGather(bytes, all);
        double[] Of(int rank, int piece) => MemoryMarshal.Cast<byte, double>(all.AsSpan((rank * slots + piece) * length * sizeof(double), length * sizeof(double))).ToArray();
        return blocks.Reduce(Of, (a, b) =>
        {
            for (var i = 0; i < a.Length; i++) a[i] += b[i];
            return a;
        });
    }

    public void Dispose()
    {
        CloseLinks();
        _deviceTransport?.Dispose();
        foreach (var kept in _kept) kept?.Dispose();
        _kept.Clear();
        _pinned.Dispose();
    }

    private void CloseLinks()
    {
        foreach (var link in _links) link?.Dispose();
    }

    /// <summary>
    /// One receive buffer per piece of each rank's block for reduce-scatter, grown as needed and kept: steps reduce same-sized
    /// gradients, and large buffers are expensive to collect.
    /// </summary>
    private Memory<byte>[][] Scratch(int bytes, ReplicaBlocks blocks)
    {
        var slots = Enumerable.Range(0, WorldSize).Sum(r => blocks.PiecesOf(r).Count);
        if (_scratch.Length < slots || _scratch[0].Length < bytes)
            _scratch = Enumerable.Range(0, slots).Select(_ => new byte[bytes]).ToArray();
        var next = 0;
        return Enumerable.Range(0, WorldSize).Select(r => blocks.PiecesOf(r).Select(_ => _scratch[next++].AsMemory(0, bytes)).ToArray()).ToArray();
    }

    private IEnumerable<int> Others() => Enumerable.Range(0, WorldSize).Where(r => r != Rank);

    /// <summary>Parts for this group that fit a buffer of <paramref name="values"/> values.</summary>
    private void CheckParts(long values, BufferParts parts)
    {
        if (parts.Ranks != WorldSize) throw new ArgumentException($"parts for {parts.Ranks} ranks in a group of {WorldSize}", nameof(parts));
        if (parts.End > values) throw new ArgumentException($"parts reach value {parts.End} of a buffer of {values}", nameof(parts));
    }

    /// <summary>The runs laid one after another from 0, as they are packed in a frame sequence.</summary>
    private static (int Offset, int Count)[] Packed(IReadOnlyList<(int Offset, int Count)> runs)
    {
        var packed = new (int, int)[runs.Count];
        for (int i = 0, at = 0; i < runs.Count; at += runs[i].Count, i++) packed[i] = (at, runs[i].Count);
        return packed;
    }

    private static Memory<byte> Bytes(Memory<byte> floats, (int Offset, int Count) run) => floats.Slice(run.Offset * sizeof(float), run.Count * sizeof(float));

    private async Task SendRuns(int peer, Memory<byte> floats, IReadOnlyList<(int Offset, int Count)> runs, CancellationToken cancellation)
    {
        foreach (var run in runs) await SendFrame(peer, Bytes(floats, run), cancellation).ConfigureAwait(false);
    }

    private async Task ReceiveRuns(int peer, Memory<byte> floats, IReadOnlyList<(int Offset, int Count)> runs, CancellationToken cancellation)
    {
        foreach (var run in runs) await ReceiveFrame(peer, Bytes(floats, run), cancellation).ConfigureAwait(false);
    }

    private static int FloatCount(Memory<byte> floats) =>
        floats.Length % sizeof(float) == 0 ? floats.Length / sizeof(float) : throw new ArgumentException("not a whole number of fp32 values", nameof(floats));

    private IPeerLink Link(int peer) =>
        _links[peer] ?? throw new ArgumentException($"rank {Rank} has no link to rank {peer}", nameof(peer));

    private async Task SendFrame(int peer, ReadOnlyMemory<byte> data, CancellationToken cancellation)
    {
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteInt64LittleEndian(header, _sent[peer]++);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), data.Length);
        var link = Link(peer);
        await link.SendAsync(header, cancellation).ConfigureAwait(false);
        await link.SendAsync(data, cancellation).ConfigureAwait(false);
        Interlocked.Add(ref _bytesSent, HeaderBytes + data.Length);
    }

    private async Task SendAfter(Task previous, int peer, ReadOnlyMemory<byte> data)
    {
        await previous.ConfigureAwait(false);
        using var deadline = new CancellationTokenSource(Timeout);
        await SendFrame(peer, data, deadline.Token).ConfigureAwait(false);
    }

    private async Task ReceiveFrame(int peer, Memory<byte> into, CancellationToken cancellation)
    {
        var header = new byte[HeaderBytes];
        var link = Link(peer);
        await link.ReceiveAsync(header, cancellation).ConfigureAwait(false);
        var (sequence, length) = (BinaryPrimitives.ReadInt64LittleEndian(header), BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8)));
        var expected = _received[peer]++;
        if (sequence != expected || length != into.Length)
            throw new CollectiveException($"{Group}: rank {peer} sent message {sequence} of {length} bytes; rank {Rank} expected message {expected} of {into.Length} bytes (the ranks disagree on the sequence of collectives)");
        await link.ReceiveAsync(into, cancellation).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the point-to-point operations of one collective concurrently; the first failure cancels the rest. A failed
    /// collective closes every link of this rank: the group is out of step and never used again, and peers blocked on
    /// this rank fail at once instead of waiting for their timeout (one dead rank fails the whole group promptly).
    /// </summary>
    private void Exchange(string collective, PeerOperation[] operations) => ExchangeAsync(collective, operations).GetAwaiter().GetResult();

    private async Task ExchangeAsync(string collective, PeerOperation[] operations)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        var tasks = operations.Select(op => Guard(op.Run, deadline)).ToArray();
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            CloseLinks();
            var failure = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException);
            var stalled = operations.Where((_, i) => !tasks[i].IsCompletedSuccessfully).Select(op => op.Peer).Distinct();
            throw failure switch
            {
                CollectiveException e => e,
                null => new CollectiveException($"{Group}: {collective} on rank {Rank} did not complete within {Timeout.TotalSeconds:0.#} s; waiting on rank(s) {string.Join(", ", stalled)}"),
                var e => Failed(collective, e),
            };
        }
    }

    /// <summary>A peer's failure (a lost link, a socket error) as the collective's: the job re-plans for it, never blaming this rank.</summary>
    private CollectiveException Failed(string collective, Exception e) =>
        e as CollectiveException ?? new CollectiveException($"{Group}: {collective} on rank {Rank} failed: {e.Message}", e);

    private static async Task Guard(Func<CancellationToken, Task> operation, CancellationTokenSource deadline)
    {
        try
        {
            await operation(deadline.Token).ConfigureAwait(false);
        }
        catch
        {
            await deadline.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private sealed record PeerOperation(int Peer, Func<CancellationToken, Task> Run);
}
