namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// What this process can do with NCCL, found once when the silo starts: the library and the CUDA runtime, or why it has none
/// (every CPU-only machine). Its silo advertises <see cref="Describe"/>, draws the ids of groups whose rank 0 it holds, and
/// joins its units' groups.
/// </summary>
public sealed class NcclSupport
{
    private readonly NcclLibrary? _nccl;
    private readonly CudaRuntime? _cuda;

    private NcclSupport(NcclLibrary? nccl, CudaRuntime? cuda, string why) => (_nccl, _cuda, WhyNot) = (nccl, cuda, why);

    /// <summary>Loads the CUDA runtime and then NCCL from <paramref name="path"/> (null: the soname libtorch loads).</summary>
    public static NcclSupport Find(string? path)
    {
        var cuda = CudaRuntime.TryLoad(out var noCuda);
        if (cuda is null) return new NcclSupport(null, null, noCuda);
        var nccl = NcclLibrary.TryLoad(path, out var why);
        return new NcclSupport(nccl, cuda, why);
    }

    public bool Available => _nccl is not null;

    /// <summary>Why there is no NCCL here; empty when there is.</summary>
    public string WhyNot { get; }

    /// <summary>What carries this silo's tensors to other processes, for its inventory.</summary>
    public string Describe() => _nccl is { } nccl ? $"NCCL {nccl.VersionText} ({nccl.Name})" : $"frames over the data plane ({WhyNot})";

    /// <summary>A new communicator id (this process hosts its bootstrap until every rank has joined); null without NCCL.</summary>
    public byte[]? NewId() => _nccl?.NewUniqueId().Bytes;

    /// <summary>
    /// How a unit on CUDA device <paramref name="cudaDevice"/> (null: not a CUDA device) joins the transports of
    /// <paramref name="ids"/>, each join aborted after <paramref name="timeout"/>.
    /// </summary>
    public DeviceTransportJoin For(int? cudaDevice, IReadOnlyDictionary<string, byte[]>? ids, TimeSpan timeout)
    {
        if (ids is null || ids.Count == 0) return DeviceTransportJoin.None;
        if (_nccl is not { } nccl || _cuda is not { } cuda) return new DeviceTransportJoin(ids, null, WhyNot);
        if (cudaDevice is not { } device) return new DeviceTransportJoin(ids, null, "its device is not a CUDA device");
        return new DeviceTransportJoin(ids,
            (id, group) => NcclComm.Join(nccl, cuda, device, NcclUniqueId.Parse(id), group.WorldSize, group.Rank, timeout, group.Group), "");
    }
}
