using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Elastic.Training.Collectives.Nccl;

/// <summary>
/// Where a tensor's first element lies (on its device: a CUDA address for a CUDA tensor): its storage's data pointer plus its
/// offset into that storage, which TorchSharp does not expose but LibTorchSharp exports. The address is good only while the
/// tensor lives, and on CUDA only for work ordered on the stream that uses it.
/// </summary>
public static partial class TensorAddress
{
    /// <summary>The address of <paramref name="tensor"/>'s first element; it must be contiguous (a collective reads count elements from there).</summary>
    public static IntPtr Of(Tensor tensor)
    {
        if (!tensor.is_contiguous()) throw new ArgumentException("a collective reads a contiguous run of elements: this tensor is not contiguous", nameof(tensor));
        return THSStorage_data_ptr(tensor.Handle) + (nint)(THSTensor_storage_offset(tensor.Handle) * tensor.ElementSize);
    }

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSStorage_data_ptr(IntPtr tensor);

    [LibraryImport("LibTorchSharp")]
    private static partial long THSTensor_storage_offset(IntPtr tensor);
}
