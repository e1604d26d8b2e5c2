using System.Runtime.ExceptionServices;
using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The data-parallel gradient reduction overlapped with backward. The backward hands runs of the stage's flat gradient over as
/// they become final (<see cref="Ready"/>); they are gathered into buckets of at least a set size, in the order handed over
/// (the same runs in the same order on every replica: the same model and schedule, so the buckets and their collectives pair
/// up), and a thread of its own sums each full bucket over the replicas, in the canonical tree over the blocks' leaves, while
/// the device thread goes on with the layers below: all-reduced, or under ZeRO 2 reduce-scattered to the ranks owning its
/// values. The tree is elementwise, so a bucket's sums have the bits of the whole buffer's. While a step's buckets are on
/// it, the group is this thread's alone.
/// </summary>
internal sealed class OverlappedReduction : IDisposable
{
    private readonly Communicator _replicas;
    private readonly ReplicaBlocks _blocks;
    private readonly BufferParts? _owners;
    private readonly long _bucketFloats;
    private readonly Thread _thread;
    private readonly object _gate = new();
    private readonly Queue<List<(int Offset, int Count)>> _queue = new();
    // The bucket being filled (on the backward's thread).
    private List<(int Offset, int Count)> _bucket = [];
    private long _bucketSize;
    private IReadOnlyList<Tensor>? _pieces;
    // Buckets queued and not yet done (queued or on the wire).
    private int _pending;
    private Exception? _error;
    private bool _dropping, _closed;

    /// <param name="owners">Under ZeRO 2, which rank owns which values of the buffer (a bucket goes to its owners only); null:
    /// every rank takes every bucket's sum.</param>
    /// <param name="bucketBytes">A bucket is sent once the runs in it reach this size (the last one of a backward when it ends).</param>
    public OverlappedReduction(Communicator replicas, ReplicaBlocks blocks, BufferParts? owners, long bucketBytes)
    {
        _replicas = replicas;
        _blocks = blocks;
        _owners = owners;
        _bucketFloats = Math.Max(1, bucketBytes / sizeof(float));
        _thread = new Thread(Work) { IsBackground = true, Name = $"{replicas.Group} rank {replicas.Rank}: gradient reduction" };
        _thread.Start();
    }

    /// <summary>
    /// Runs <paramref name="backward"/>, which hands runs of <paramref name="pieces"/> (this replica's block sums, in the order of
    /// <see cref="ReplicaBlocks.PiecesOf"/>) to <see cref="Ready"/>, and returns its result once every run handed over is summed
    /// into <paramref name="pieces"/>[0]. If the backward fails, buckets not yet started are dropped and the one on the wire
    /// (bounded by the group's collective timeout) ends before the failure goes on: the buffers are the caller's again.
    /// </summary>
    public T During<T>(IReadOnlyList<Tensor> pieces, Func<T> backward)
    {
        lock (_gate) (_pieces, _error, _dropping) = (pieces, null, false);
        T result;
        try
        {
            result = backward();
        }
        catch
        {
            lock (_gate) Drop();
            (_bucket, _bucketSize) = ([], 0);
            WaitIdle();
            throw;
        }
        if (_bucket.Count > 0) Send();
        WaitIdle();
        if (_error is { } error) ExceptionDispatchInfo.Throw(error);
        return result;
    }

    /// <summary>Adds run [<paramref name="offset"/>, +<paramref name="length"/>) of the pieces to the bucket, sending it when full (from the backward's thread).</summary>
    public void Ready(long offset, long length)
    {
        _bucket.Add((checked((int)offset), checked((int)length)));
        _bucketSize += length;
        if (_bucketSize >= _bucketFloats) Send();
    }

    private void Send()
    {
        // The collectives take runs in buffer order.
        _bucket.Sort();
        lock (_gate)
        {
            _queue.Enqueue(_bucket);
            _pending++;
            Monitor.PulseAll(_gate);
        }
        (_bucket, _bucketSize) = ([], 0);
    }

    private void Drop()
    {
        _dropping = true;
        _pending -= _queue.Count;
        _queue.Clear();
        Monitor.PulseAll(_gate);
    }

    private void WaitIdle()
    {
        lock (_gate)
        {
            while (_pending > 0) Monitor.Wait(_gate);
            _pieces = null;
        }
    }

    private void Work()
    {
        while (true)
        {
            List<(int Offset, int Count)> bucket;
            IReadOnlyList<Tensor> pieces;
            bool skip;
            lock (_gate)
            {
                while (_queue.Count == 0 && !_closed) Monitor.Wait(_gate);
                if (_queue.Count == 0) return;
                bucket = _queue.Dequeue();
                (pieces, skip) = (_pieces!, _dropping || _error is not null);
            }
            try
            {
                // After a failed bucket the group is out of step: the rest are not sent (the step fails with the first error).
                if (!skip) Reduce(pieces, bucket);
            }
            catch (Exception e)
            {
                lock (_gate) _error ??= e;
            }
            finally
            {
                lock (_gate)
                {
                    _pending--;
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }

    /// <summary>The bucket's runs summed over the replicas: an all-reduce is a reduce-scatter and all-gather over even shares of them.</summary>
    private void Reduce(IReadOnlyList<Tensor> pieces, List<(int Offset, int Count)> bucket)
    {
        using var scope = NewDisposeScope();
        if (_owners is not null)
        {
            _replicas.TensorReduceScatterSumInPlace(pieces, _blocks, _owners.Within(bucket));
            return;
        }
        var shares = BufferParts.Spread(bucket, _replicas.WorldSize);
        _replicas.TensorReduceScatterSumInPlace(pieces, _blocks, shares);
        _replicas.TensorAllGatherParts(pieces[0], shares);
    }

    /// <summary>Ends the thread: buckets still queued are dropped, and one on the wire fails at once if the group was closed first.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _closed = true;
            Drop();
        }
        // A bucket's collectives end within a few collective timeouts (each of their exchanges is bounded) whatever the peers do.
        _thread.Join(4 * _replicas.Timeout);
    }
}
