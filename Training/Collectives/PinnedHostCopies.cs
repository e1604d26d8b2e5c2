using static TorchSharp.torch;

namespace Elastic.Training.Collectives;

/// <summary>
/// Page-locked host tensors kept from call to call, one per key: a device tensor bound for a socket, or arriving from one,
/// crosses to the host in one DMA transfer instead of a bounce through pageable memory, with no allocation and no page
/// faults per step (a step sends the same sizes every time). Used from one thread; never for CPU tensors (they are their
/// own host copy, and a build without CUDA cannot pin).
/// </summary>
public sealed class PinnedHostCopies<TKey> : IDisposable where TKey : notnull
{
    private readonly Dictionary<TKey, Tensor> _kept = [];

    /// <summary>The flat host tensor kept under <paramref name="key"/> with <paramref name="like"/>'s dtype and element count (made, or remade when it does not fit).</summary>
    public Tensor For(TKey key, Tensor like)
    {
        if (_kept.TryGetValue(key, out var kept) && kept.dtype == like.dtype && kept.NumberOfElements == like.NumberOfElements) return kept;
        kept?.Dispose();
        return _kept[key] = PinnedHost.Empty([like.NumberOfElements], like.dtype);
    }

    /// <summary>Copies <paramref name="device"/> into the host tensor kept under <paramref name="key"/> and returns that (flat, contiguous).</summary>
    public Tensor CopyOut(TKey key, Tensor device)
    {
        var kept = For(key, device);
        using var scope = NewDisposeScope();
        kept.view(device.shape).copy_(device.detach());
        return kept;
    }

    /// <summary>Bytes of the page-locked memory kept.</summary>
    public long Bytes => _kept.Values.Sum(t => t.NumberOfElements * t.ElementSize);

    public void Dispose()
    {
        foreach (var kept in _kept.Values) kept.Dispose();
        _kept.Clear();
    }
}

/// <summary>Page-locked host memory: what a device copies to and from by DMA.</summary>
public static class PinnedHost
{
    /// <summary>A new page-locked host tensor, owned by the caller (needs CUDA: a build without it cannot pin).</summary>
    public static Tensor Empty(long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var pageable = empty(shape, dtype: dtype);
        return pageable.pin_memory().DetachFromDisposeScope();
    }
}
