using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// Runs a data-plane collective over a flat fp32 tensor through a managed wire buffer: the data plane moves bytes, and a
/// socket that fails mid-collective may still write into its buffer, which must never be native memory that can be freed.
/// A device tensor goes through a pinned host copy kept across steps: no allocation and no page faults per step.
/// </summary>
internal sealed class HostWire : IDisposable
{
    private byte[] _wire = [];
    private Tensor? _staging;

    /// <summary>Copies <paramref name="flat"/> out, runs <paramref name="collective"/> on the bytes, and copies the result back.</summary>
    public void Run(Tensor flat, Action<Memory<byte>> collective)
    {
        var host = flat.device_type == TorchSharp.DeviceType.CPU ? flat : Staged(flat);
        var bytes = host.bytes;
        if (_wire.Length != bytes.Length) _wire = new byte[bytes.Length];
        bytes.CopyTo(_wire);
        collective(_wire);
        _wire.CopyTo(host.bytes);
        if (!ReferenceEquals(host, flat)) flat.copy_(host);
    }

    /// <summary>Bytes of the wire buffer and the pinned copy.</summary>
    public long Bytes => _wire.Length + (_staging is null ? 0 : _staging.numel() * _staging.element_size());

    private Tensor Staged(Tensor flat)
    {
        if (_staging is null)
        {
            using var pageable = empty(flat.shape, dtype: flat.dtype);
            _staging = pageable.pin_memory().DetachFromDisposeScope();
        }
        return _staging.copy_(flat);
    }

    public void Dispose() => _staging?.Dispose();
}
