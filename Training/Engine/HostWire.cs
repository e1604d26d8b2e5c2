using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// Runs data-plane collectives over flat fp32 tensors through one managed wire buffer: the data plane moves bytes, and a
/// socket that fails mid-collective may still write into its buffer, which must never be native memory that can be freed.
/// Collectives run one after another, so the gradient's and the parameters' share the buffer (sized for the larger). A
/// device tensor goes through a pinned host copy kept across steps (one per tensor size): no allocation and no page
/// faults per step.
/// </summary>
internal sealed class HostWire : IDisposable
{
    private byte[] _wire = [];
    private readonly PinnedHostCopies<long> _staging = new();

    /// <summary>Copies <paramref name="flat"/> out, runs <paramref name="collective"/> on the bytes, and copies the result back.</summary>
    public void Run(Tensor flat, Action<Memory<byte>> collective) => Run([flat], wires => collective(wires[0]));

    /// <summary>
    /// Copies <paramref name="flats"/> (of one size) out one after another, runs <paramref name="collective"/> on their bytes,
    /// and copies the first back: collectives over the pieces of a replica's block leave their result there.
    /// </summary>
    public void Run(IReadOnlyList<Tensor> flats, Action<IReadOnlyList<Memory<byte>>> collective)
    {
        var length = (int)(flats[0].numel() * flats[0].element_size());
        if (flats.Any(f => f.numel() != flats[0].numel())) throw new ArgumentException("the pieces of a collective differ in size", nameof(flats));
        if (_wire.Length < length * flats.Count) _wire = new byte[length * flats.Count];
        var wires = flats.Select((flat, i) =>
        {
            var wire = _wire.AsMemory(i * length, length);
            (flat.device_type == TorchSharp.DeviceType.CPU ? flat : _staging.CopyOut(flat.numel(), flat)).bytes.CopyTo(wire.Span);
            return wire;
        }).ToArray();
        collective(wires);
        var first = flats[0];
        var host = first.device_type == TorchSharp.DeviceType.CPU ? first : _staging.For(first.numel(), first);
        wires[0].Span.CopyTo(host.bytes);
        if (!ReferenceEquals(host, first)) first.copy_(host);
    }

    /// <summary>Bytes of the wire buffer and the pinned copies.</summary>
    public long Bytes => _wire.Length + _staging.Bytes;

    public void Dispose() => _staging.Dispose();
}
