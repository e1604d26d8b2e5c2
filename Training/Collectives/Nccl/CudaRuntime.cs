using System.Runtime.InteropServices;

namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// The three CUDA runtime calls NCCL's use needs and TorchSharp does not expose: which device is current (NCCL joins on it),
/// and whether the default stream, where libtorch and NCCL both queue their work, has finished it. Loaded at run time from the
/// runtime CUDA libtorch already loaded.
/// </summary>
public sealed unsafe class CudaRuntime
{
    private static readonly string[] Names = ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"];

    private readonly delegate* unmanaged<int, int> _setDevice;
    private readonly delegate* unmanaged<int*, int> _getDevice;
    private readonly delegate* unmanaged<IntPtr, int> _streamQuery;

    private CudaRuntime(IntPtr library)
    {
        _setDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(library, "cudaSetDevice");
        _getDevice = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "cudaGetDevice");
        _streamQuery = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(library, "cudaStreamQuery");
    }

    /// <summary>The CUDA runtime, or null with <paramref name="why"/> when none loads (a CPU-only machine).</summary>
    public static CudaRuntime? TryLoad(out string why)
    {
        foreach (var name in Names)
            if (NativeLibrary.TryLoad(name, out var library))
            {
                if (new[] { "cudaSetDevice", "cudaGetDevice", "cudaStreamQuery" }.All(e => NativeLibrary.TryGetExport(library, e, out _)))
                {
                    why = "";
                    return new CudaRuntime(library);
                }
            }
        why = $"no CUDA runtime loads ({string.Join(", ", Names)})";
        return null;
    }

    /// <summary>Makes <paramref name="device"/> current on the calling thread.</summary>
    public void SetDevice(int device)
    {
        var error = _setDevice(device);
        if (error != 0) throw new CollectiveException($"cudaSetDevice({device}) failed with CUDA error {error}");
    }

    public int CurrentDevice
    {
        get
        {
            int device;
            var error = _getDevice(&device);
            return error == 0 ? device : throw new CollectiveException($"cudaGetDevice failed with CUDA error {error}");
        }
    }

    /// <summary>Whether the default stream has finished all its work (cudaErrorNotReady, 600, while it has not); other errors throw.</summary>
    public bool DefaultStreamIdle()
    {
        var error = _streamQuery(IntPtr.Zero);
        return error switch
        {
            0 => true,
            600 => false,
            _ => throw new CollectiveException($"cudaStreamQuery failed with CUDA error {error}"),
        };
    }
}
