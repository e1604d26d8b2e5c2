using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The host buffers a trainer's state is copied into for a checkpoint, kept from one capture to the next (no
/// allocation, no page faults). A CPU tensor is copied into a managed array; a device tensor into a page-locked
/// host tensor, so the copy is one DMA transfer instead of a bounce through pageable memory, and the upload reads
/// the page-locked memory directly. Reuse is safe because a checkpoint never starts before the previous one committed.
/// </summary>
public sealed class CheckpointStaging : IDisposable
{
    private readonly Dictionary<string, byte[]> _managed = [];
    private readonly Dictionary<string, TensorMemory> _pinned = [];

    /// <summary>A host copy of <paramref name="source"/>, valid until the next copy under the same key or until this staging is disposed.</summary>
    public ReadOnlyMemory<byte> Copy(string key, Tensor source)
    {
        // The scope owns the intermediates too: a temporary left to the finalizer can be freed mid-call.
        using var scope = NewDisposeScope();
        if (source.device_type != TorchSharp.DeviceType.CPU)
        {
            if (!_pinned.TryGetValue(key, out var pinned) || !pinned.Fits(source))
            {
                ((IDisposable?)pinned)?.Dispose();
                _pinned[key] = pinned = new TensorMemory(Collectives.PinnedHost.Empty(source.shape, source.dtype));
            }
            pinned.Tensor.copy_(source.detach());
            return pinned.Memory;
        }
        var bytes = source.detach().contiguous().bytes;
        if (!_managed.TryGetValue(key, out var buffer) || buffer.Length != bytes.Length)
            _managed[key] = buffer = GC.AllocateUninitializedArray<byte>(bytes.Length);
        bytes.CopyTo(buffer);
        return buffer;
    }

    /// <summary>Bytes of host buffers kept for the next capture.</summary>
    public long Bytes => _managed.Values.Sum(b => (long)b.Length) + _pinned.Values.Sum(p => p.Tensor.numel() * p.Tensor.element_size());

    public void Dispose()
    {
        foreach (var pinned in _pinned.Values) ((IDisposable)pinned).Dispose();
        _pinned.Clear();
        _managed.Clear();
    }
}
