using System.Diagnostics;
using static TorchSharp.torch;

namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// One NCCL communicator: a process group of one generation, on one CUDA device. It is non-blocking, so nothing waits past
/// the collective timeout: every call is followed by polling its state until the default stream (where libtorch queues its
/// kernels and NCCL its transfers, so each is ordered after the other) has finished, and a peer that died or a timeout that
/// passed aborts the communicator, which ends its kernels, and fails the collective. A communicator that failed is not used
/// again: the job re-plans into a new generation with new communicators.
/// </summary>
public sealed class NcclComm : IDeviceTransport
{
    private readonly NcclLibrary _nccl;
    private readonly CudaRuntime _cuda;
    private readonly string _group;
    private IntPtr _comm;

    private NcclComm(NcclLibrary nccl, CudaRuntime cuda, IntPtr comm, int device, int ranks, int rank, string group) =>
        (_nccl, _cuda, _comm, Device, Ranks, Rank, _group) = (nccl, cuda, comm, device, ranks, rank, group);

    public int Device { get; }
    public int Ranks { get; }
    public int Rank { get; }

    public string Name => $"NCCL {_nccl.VersionText}";

    public bool Carries(Tensor tensor) => tensor.device_type == TorchSharp.DeviceType.CUDA && tensor.device_index == Device;

    /// <summary>
    /// Joins communicator <paramref name="id"/> as <paramref name="rank"/> of <paramref name="ranks"/> on CUDA device
    /// <paramref name="device"/>; every rank must join within <paramref name="timeout"/>, or the join is aborted.
    /// </summary>
    public static NcclComm Join(NcclLibrary nccl, CudaRuntime cuda, int device, NcclUniqueId id, int ranks, int rank, TimeSpan timeout, string group)
    {
        if (rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"a rank of a group of {ranks}");
        cuda.SetDevice(device);
        var comm = new NcclComm(nccl, cuda, nccl.BeginInit(id, ranks, rank), device, ranks, rank, group);
        comm.Settle($"joining as rank {rank} of {ranks}", timeout, streamToo: false);
        return comm;
    }

    /// <summary>
    /// Sends each of <paramref name="sends"/> to its peer and receives each of <paramref name="receives"/> from its peer, all in
    /// one group (no order among them can deadlock), and waits until every transfer is done. Tensors are contiguous, on this
    /// communicator's device, and the receiving buffers are the sizes the peers send.
    /// </summary>
    public void Exchange(IReadOnlyList<(int Peer, Tensor Tensor)> sends, IReadOnlyList<(int Peer, Tensor Into)> receives, TimeSpan timeout)
    {
        foreach (var (peer, tensor) in sends.Concat(receives)) CheckPeer(peer, tensor);
        Enqueue("send/receive", () =>
        {
            foreach (var (peer, tensor) in sends)
                _nccl.Check(_nccl.Send(TensorAddress.Of(tensor), (nuint)tensor.NumberOfElements, NcclTypes.Of(tensor.dtype), peer, _comm, IntPtr.Zero), _comm, $"ncclSend to rank {peer}");
            foreach (var (peer, into) in receives)
                _nccl.Check(_nccl.Recv(TensorAddress.Of(into), (nuint)into.NumberOfElements, NcclTypes.Of(into.dtype), peer, _comm, IntPtr.Zero), _comm, $"ncclRecv from rank {peer}");
        });
        Settle($"send/receive of {sends.Count} and {receives.Count} tensor(s)", timeout, streamToo: true);
    }

    /// <summary>Every rank's <paramref name="part"/> into <paramref name="whole"/>, rank by rank (a copy: NCCL adds nothing here).</summary>
    public void AllGather(Tensor part, Tensor whole, TimeSpan timeout)
    {
        if (whole.NumberOfElements != part.NumberOfElements * Ranks || whole.dtype != part.dtype)
            throw new ArgumentException($"{_group}: an all-gather of {part.NumberOfElements} {part.dtype} element(s) from {Ranks} ranks needs {part.NumberOfElements * Ranks}, not {whole.NumberOfElements} {whole.dtype}", nameof(whole));
        CheckPeer(Rank, part);
        CheckPeer(Rank, whole);
        Enqueue("all-gather", () => _nccl.Check(_nccl.AllGather(TensorAddress.Of(part), TensorAddress.Of(whole), (nuint)part.NumberOfElements, NcclTypes.Of(part.dtype), _comm, IntPtr.Zero), _comm, "ncclAllGather"));
        Settle($"all-gather of {part.NumberOfElements} element(s)", timeout, streamToo: true);
    }

    private void CheckPeer(int peer, Tensor tensor)
    {
        if (peer < 0 || peer >= Ranks) throw new ArgumentOutOfRangeException(nameof(peer), peer, $"{_group}: a rank of a group of {Ranks}");
        if (!Carries(tensor))
            throw new ArgumentException($"{_group}: NCCL moves tensors on cuda:{Device}, not on {tensor.device}", nameof(tensor));
    }

    private void Enqueue(string what, Action calls)
    {
        ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
        _cuda.SetDevice(Device);
        _nccl.Check(_nccl.GroupStart(), _comm, $"ncclGroupStart ({what})");
        try
        {
            calls();
        }
        finally
        {
            // A group that was started is always ended, or NCCL keeps it open on this thread.
            _nccl.Check(_nccl.GroupEnd(), _comm, $"ncclGroupEnd ({what})");
        }
    }

    /// <summary>
    /// Polls until the communicator is done with its call (and, with <paramref name="streamToo"/>, the default stream with the
    /// transfers); an error or the timeout aborts the communicator and throws.
    /// </summary>
    private void Settle(string what, TimeSpan timeout, bool streamToo)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var state = _nccl.AsyncError(_comm);
            if (state is not NcclResult.Success and not NcclResult.InProgress) Fail($"{what} failed: {_nccl.Describe(state, _comm)}");
            if (state == NcclResult.Success && (!streamToo || _cuda.DefaultStreamIdle())) return;
            if (clock.Elapsed > timeout) Fail($"{what} did not finish within {timeout.TotalSeconds:0.#} s (a peer that died or never came); the communicator is aborted");
            Thread.Sleep(clock.Elapsed < TimeSpan.FromMilliseconds(10) ? 0 : 1);
        }
    }

    private void Fail(string message)
    {
        Abort();
        throw new CollectiveException($"{_group}: NCCL {message}");
    }

    private void Abort()
    {
        if (_comm == IntPtr.Zero) return;
        _nccl.Abort(_comm);
        _comm = IntPtr.Zero;
    }

    public void Dispose()
    {
        if (_comm == IntPtr.Zero) return;
        _nccl.Destroy(_comm);
        _comm = IntPtr.Zero;
    }
}
