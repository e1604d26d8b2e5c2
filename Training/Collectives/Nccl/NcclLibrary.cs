using System.Runtime.InteropServices;

namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// NCCL, loaded at run time. A process with CUDA libtorch has libnccl loaded already (libtorch_cuda links it, and loading it
/// by its soname finds that copy); another can name a path. A machine without it (every CPU-only one) gets null and the
/// reason, and its collectives stay on the socket plane. NCCL moves bytes only (send, receive, all-gather): its reductions
/// change with the number and order of ranks (NVIDIA/nccl#157), which the layout contract forbids, so the adds stay ours.
/// </summary>
public sealed unsafe class NcclLibrary
{
    /// <summary>The soname a CUDA build of libtorch loads.</summary>
    public const string DefaultName = "libnccl.so.2";

    /// <summary>NCCL 2.14, the first whose communicators can be made non-blocking: a join whose peer never comes is aborted at its timeout.</summary>
    public const int MinimumVersion = 21400;

    private static readonly string[] Entries =
    [
        "ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRankConfig", "ncclCommDestroy", "ncclCommAbort", "ncclCommGetAsyncError",
        "ncclGetErrorString", "ncclGetLastError", "ncclSend", "ncclRecv", "ncclAllGather", "ncclGroupStart", "ncclGroupEnd",
    ];

    private readonly delegate* unmanaged<int*, NcclResult> _getVersion;
    private readonly delegate* unmanaged<NcclUniqueId.Raw*, NcclResult> _getUniqueId;
    private readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId.Raw, int, NcclConfig*, NcclResult> _commInitRankConfig;
    private readonly delegate* unmanaged<IntPtr, NcclResult> _commDestroy;
    private readonly delegate* unmanaged<IntPtr, NcclResult> _commAbort;
    private readonly delegate* unmanaged<IntPtr, NcclResult*, NcclResult> _commGetAsyncError;
    private readonly delegate* unmanaged<NcclResult, IntPtr> _getErrorString;
    private readonly delegate* unmanaged<IntPtr, IntPtr> _getLastError;
    private readonly delegate* unmanaged<IntPtr, nuint, NcclDataType, int, IntPtr, IntPtr, NcclResult> _send;
    private readonly delegate* unmanaged<IntPtr, nuint, NcclDataType, int, IntPtr, IntPtr, NcclResult> _recv;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, NcclDataType, IntPtr, IntPtr, NcclResult> _allGather;
    private readonly delegate* unmanaged<NcclResult> _groupStart;
    private readonly delegate* unmanaged<NcclResult> _groupEnd;

    private NcclLibrary(string name, IntPtr library)
    {
        Name = name;
        _getVersion = (delegate* unmanaged<int*, NcclResult>)NativeLibrary.GetExport(library, "ncclGetVersion");
        _getUniqueId = (delegate* unmanaged<NcclUniqueId.Raw*, NcclResult>)NativeLibrary.GetExport(library, "ncclGetUniqueId");
        _commInitRankConfig = (delegate* unmanaged<IntPtr*, int, NcclUniqueId.Raw, int, NcclConfig*, NcclResult>)NativeLibrary.GetExport(library, "ncclCommInitRankConfig");
        _commDestroy = (delegate* unmanaged<IntPtr, NcclResult>)NativeLibrary.GetExport(library, "ncclCommDestroy");
        _commAbort = (delegate* unmanaged<IntPtr, NcclResult>)NativeLibrary.GetExport(library, "ncclCommAbort");
        _commGetAsyncError = (delegate* unmanaged<IntPtr, NcclResult*, NcclResult>)NativeLibrary.GetExport(library, "ncclCommGetAsyncError");
        _getErrorString = (delegate* unmanaged<NcclResult, IntPtr>)NativeLibrary.GetExport(library, "ncclGetErrorString");
        _getLastError = (delegate* unmanaged<IntPtr, IntPtr>)NativeLibrary.GetExport(library, "ncclGetLastError");
        _send = (delegate* unmanaged<IntPtr, nuint, NcclDataType, int, IntPtr, IntPtr, NcclResult>)NativeLibrary.GetExport(library, "ncclSend");
        _recv = (delegate* unmanaged<IntPtr, nuint, NcclDataType, int, IntPtr, IntPtr, NcclResult>)NativeLibrary.GetExport(library, "ncclRecv");
        _allGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, NcclDataType, IntPtr, IntPtr, NcclResult>)NativeLibrary.GetExport(library, "ncclAllGather");
        _groupStart = (delegate* unmanaged<NcclResult>)NativeLibrary.GetExport(library, "ncclGroupStart");
        _groupEnd = (delegate* unmanaged<NcclResult>)NativeLibrary.GetExport(library, "ncclGroupEnd");
        int version;
        Check(_getVersion(&version), IntPtr.Zero, "ncclGetVersion");
        Version = version;
    }

    /// <summary>What was loaded: the soname or the path asked for.</summary>
    public string Name { get; }

    /// <summary>NCCL's version code (2.27.3 is 22703).</summary>
    public int Version { get; }

    /// <summary>The version as NCCL writes it ("2.27.3").</summary>
    public string VersionText => DescribeVersion(Version);

    /// <summary>Codes before 2.9 have one digit less for the minor version (NCCL_VERSION in nccl.h).</summary>
    public static string DescribeVersion(int code) => code >= 20900
        ? $"{code / 10000}.{code % 10000 / 100}.{code % 100}"
        : $"{code / 1000}.{code % 1000 / 100}.{code % 100}";

    /// <summary>
    /// Loads NCCL from <paramref name="path"/> (null: <see cref="DefaultName"/>, found as the dynamic loader finds it); null with
    /// <paramref name="why"/> when there is none, it lacks an entry this binding calls, or it is older than <see cref="MinimumVersion"/>.
    /// </summary>
    public static NcclLibrary? TryLoad(string? path, out string why)
    {
        var name = string.IsNullOrWhiteSpace(path) ? DefaultName : path;
        if (!NativeLibrary.TryLoad(name, out var library))
        {
            why = path is null
                ? $"{name} is not loaded and the dynamic loader does not find it (a CPU build of libtorch, or NCCL not installed)"
                : $"NCCL path {name} could not be loaded (no such file, or not a shared library for this machine)";
            return null;
        }
        var missing = Entries.Where(e => !NativeLibrary.TryGetExport(library, e, out _)).ToList();
        if (missing.Count > 0)
        {
            why = $"{name} is not NCCL {DescribeVersion(MinimumVersion)} or later: it lacks {string.Join(", ", missing)}";
            return null;
        }
        var nccl = new NcclLibrary(name, library);
        if (nccl.Version < MinimumVersion)
        {
            why = $"{name} is NCCL {nccl.VersionText}; this needs {DescribeVersion(MinimumVersion)} or later (non-blocking communicators, so that a join can be aborted)";
            return null;
        }
        why = "";
        return nccl;
    }

    /// <summary>A new unique id: the process that draws it hosts the communicator's bootstrap, so rank 0's process draws it.</summary>
    public NcclUniqueId NewUniqueId()
    {
        NcclUniqueId.Raw raw;
        Check(_getUniqueId(&raw), IntPtr.Zero, "ncclGetUniqueId");
        return NcclUniqueId.From(raw);
    }

    /// <summary>Starts a non-blocking join as <paramref name="rank"/> of <paramref name="ranks"/> on the current CUDA device; it completes when <see cref="AsyncError"/> stops saying in progress.</summary>
    internal IntPtr BeginInit(NcclUniqueId id, int ranks, int rank)
    {
        var config = NcclConfig.NonBlocking;
        IntPtr comm;
        var result = _commInitRankConfig(&comm, ranks, id.ToRaw(), rank, &config);
        if (result is not NcclResult.Success and not NcclResult.InProgress) Check(result, comm, $"ncclCommInitRankConfig (rank {rank} of {ranks})");
        return comm;
    }

    /// <summary>The communicator's state: success once its last call finished, in progress while one runs, else the error that broke it.</summary>
    internal NcclResult AsyncError(IntPtr comm)
    {
        NcclResult state;
        Check(_commGetAsyncError(comm, &state), comm, "ncclCommGetAsyncError");
        return state;
    }

    /// <summary>Aborts what runs on the communicator (kernels waiting for a peer that died included) and frees it.</summary>
    internal void Abort(IntPtr comm) => _commAbort(comm);

    internal void Destroy(IntPtr comm) => _commDestroy(comm);

    internal NcclResult Send(IntPtr buffer, nuint count, NcclDataType type, int peer, IntPtr comm, IntPtr stream) => _send(buffer, count, type, peer, comm, stream);

    internal NcclResult Recv(IntPtr buffer, nuint count, NcclDataType type, int peer, IntPtr comm, IntPtr stream) => _recv(buffer, count, type, peer, comm, stream);

    internal NcclResult AllGather(IntPtr send, IntPtr receive, nuint count, NcclDataType type, IntPtr comm, IntPtr stream) => _allGather(send, receive, count, type, comm, stream);

    internal NcclResult GroupStart() => _groupStart();

    internal NcclResult GroupEnd() => _groupEnd();

    /// <summary>Throws a <see cref="CollectiveException"/> for a failed call, with NCCL's name for the error and its last message.</summary>
    internal void Check(NcclResult result, IntPtr comm, string call)
    {
        if (result is NcclResult.Success or NcclResult.InProgress) return;
        throw new CollectiveException($"{call} failed: {Describe(result, comm)}");
    }

    /// <summary>NCCL's name for <paramref name="result"/> and, where it has one, its last error message.</summary>
    internal string Describe(NcclResult result, IntPtr comm)
    {
        var name = Marshal.PtrToStringUTF8(_getErrorString(result)) ?? result.ToString();
        var last = Marshal.PtrToStringUTF8(_getLastError(comm));
        return string.IsNullOrWhiteSpace(last) ? $"{name} ({(int)result})" : $"{name} ({(int)result}): {last.Trim()}";
    }

    /// <summary>
    /// The fields of ncclConfig_t as NCCL 2.14 had them. NCCL reads as many bytes as <see cref="Size"/> says and takes the
    /// rest, and every field a version after <see cref="Version"/> added, from its defaults: only blocking is ours to set.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct NcclConfig
    {
        public nuint Size;
        public uint Magic;
        public uint Version;
        public int Blocking;
        public int CgaClusterSize;
        public int MinCtas;
        public int MaxCtas;
        public IntPtr NetName;

        public static NcclConfig NonBlocking => new()
        {
            Size = (nuint)sizeof(NcclConfig), Magic = 0xcafebeef, Version = MinimumVersion, Blocking = 0,
            CgaClusterSize = int.MinValue, MinCtas = int.MinValue, MaxCtas = int.MinValue, NetName = IntPtr.Zero,
        };
    }
}
