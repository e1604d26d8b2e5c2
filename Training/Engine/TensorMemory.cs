using System.Buffers;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>The memory of a contiguous host tensor as <see cref="Memory{T}"/>, so that writers read it without a managed copy; owns the tensor.</summary>
public sealed class TensorMemory(Tensor tensor) : MemoryManager<byte>
{
    public Tensor Tensor { get; } = tensor.device_type == TorchSharp.DeviceType.CPU && tensor.is_contiguous()
        ? tensor
        : throw new ArgumentException($"a {tensor.device_type} tensor (contiguous: {tensor.is_contiguous()}) has no host memory to expose", nameof(tensor));

    public bool Fits(Tensor other) => other.dtype == Tensor.dtype && other.shape.SequenceEqual(Tensor.shape);

    public override Span<byte> GetSpan() => Tensor.bytes;

    public override unsafe MemoryHandle Pin(int elementIndex = 0) =>
        new((byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref GetSpan()[elementIndex]));

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Tensor.Dispose();
    }
}
