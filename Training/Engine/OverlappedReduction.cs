using System.Runtime.ExceptionServices;
using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The data-parallel gradient reduction overlapped with backward: each run of the stage's flat gradient is summed over the
/// replicas, in the canonical tree over the blocks' leaves, on a thread of its own as soon as the backward hands it over
/// (<see cref="Ready"/>), while the device thread goes on with the layers below: all-reduced, or under ZeRO 2 reduce-scattered
/// to the ranks that own its values. The tree is elementwise, so a run's sum has the bits of the whole buffer's; every replica
/// hands the same runs in the same order (the same model and schedule), so the collectives pair up. While a step's runs are on
/// it, the group is this thread's alone.
/// </summary>
internal sealed class OverlappedReduction : IDisposable
{
    private readonly Communicator _replicas;
    private readonly ReplicaBlocks _blocks;
    private readonly BufferParts? _owners;
    private readonly Thread _thread;
    private readonly object _gate = new();
    private readonly Queue<(long Offset, long Length)> _queue = new();
    private IReadOnlyList<Tensor>? _pieces;
    // Runs handed over and not yet done (queued or on the wire).
    private int _pending;
    private Exception? _error;
    private bool _dropping, _closed;

    /// <param name="owners">Under ZeRO 2, which rank owns which values of the buffer (each run goes to its owners only); null:
    /// every rank takes every run's sum.</param>
    public OverlappedReduction(Communicator replicas, ReplicaBlocks blocks, BufferParts? owners = null)
    {
        _replicas = replicas;
        _blocks = blocks;
        _owners = owners;
        _thread = new Thread(Work) { IsBackground = true, Name = $"{replicas.Group} rank {replicas.Rank}: gradient reduction" };
        _thread.Start();
    }

    /// <summary>
    /// Runs <paramref name="backward"/>, which hands runs of <paramref name="pieces"/> (this replica's block sums, in the order of
    /// <see cref="ReplicaBlocks.PiecesOf"/>) to <see cref="Ready"/>, and returns its result once every run handed over is summed
    /// into <paramref name="pieces"/>[0]. If the backward fails, runs not yet started are dropped and the one on the wire (bounded
    /// by the group's collective timeout) ends before the failure goes on: the buffers are the caller's again.
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
            WaitIdle();
            throw;
        }
        WaitIdle();
        if (_error is { } error) ExceptionDispatchInfo.Throw(error);
        return result;
    }

    /// <summary>Queues run [<paramref name="offset"/>, +<paramref name="length"/>) of the pieces for the all-reduce (from the backward's thread).</summary>
    public void Ready(long offset, long length)
    {
        lock (_gate)
        {
            _queue.Enqueue((offset, length));
            _pending++;
            Monitor.PulseAll(_gate);
        }
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
            (long Offset, long Length) run;
            IReadOnlyList<Tensor> pieces;
            bool skip;
            lock (_gate)
            {
                while (_queue.Count == 0 && !_closed) Monitor.Wait(_gate);
                if (_queue.Count == 0) return;
                run = _queue.Dequeue();
                (pieces, skip) = (_pieces!, _dropping || _error is not null);
            }
            try
            {
                // After a failed run the group is out of step: the rest are not sent (the step fails with the first error).
                if (!skip) Reduce(pieces, run);
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

    private void Reduce(IReadOnlyList<Tensor> pieces, (long Offset, long Length) run)
    {
        using var scope = NewDisposeScope();
        IReadOnlyList<Tensor> window = [.. pieces.Select(p => p.narrow(0, run.Offset, run.Length))];
        if (_owners is null) _replicas.TensorAllReduceSumInPlace(window, _blocks);
        else _replicas.TensorReduceScatterSumInPlace(window, _blocks, _owners.Within((int)run.Offset, (int)run.Length));
    }

    /// <summary>Ends the thread: runs still queued are dropped, and one on the wire fails at once if the group was closed first.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _closed = true;
            Drop();
        }
        // A run's collective ends within a few collective timeouts (each of its exchanges is bounded) whatever its peers do.
        _thread.Join(4 * _replicas.Timeout);
    }
}
