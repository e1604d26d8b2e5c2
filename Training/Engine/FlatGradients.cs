using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// Gradients as one flat fp32 vector per buffer, parameters in canonical (name) order. Binding a buffer
/// points every parameter's .grad at its slice, so backward accumulates straight into it (no copies) and
/// a whole gradient can be summed, scaled, clipped or sent as one tensor.
/// </summary>
public sealed class FlatGradients : IDisposable
{
    private readonly IReadOnlyList<(string Name, Tensor Parameter)> _parameters;
    private readonly long[] _offsets;
    private readonly Device _device;
    private readonly Stack<Tensor> _free = new();
    private readonly List<Tensor> _all = [];

    /// <param name="parameters">The autograd leaves whose gradients the buffers hold, in buffer order.</param>
    public FlatGradients(IReadOnlyList<(string Name, Tensor Parameter)> parameters, Device device)
    {
        _parameters = parameters;
        _device = device;
        _offsets = new long[parameters.Count];
        long total = 0;
        for (var i = 0; i < parameters.Count; i++)
        {
            _offsets[i] = total;
            total += parameters[i].Parameter.numel();
        }
        Length = total;
    }

    /// <summary>Elements in one flat gradient.</summary>
    public long Length { get; }

    /// <summary>Where each parameter's gradient sits in a flat buffer, in parameter order.</summary>
    public IEnumerable<(string Name, long Offset, long Length)> Slices => _parameters.Select((p, i) => (p.Name, _offsets[i], p.Parameter.numel()));

    /// <summary>Where the gradient of <paramref name="name"/> sits in a flat buffer.</summary>
    public (long Offset, long Length) SliceOf(string name) =>
        Slices.Where(s => s.Name == name).Select(s => (s.Offset, s.Length)).FirstOrDefault((-1, 0)) is { Offset: >= 0 } slice
            ? slice
            : throw new ArgumentException($"no gradient named {name} in this buffer", nameof(name));

    /// <summary>Bytes of every buffer this pool has allocated (it keeps them for reuse).</summary>
    public long AllocatedBytes => _all.Count * Length * sizeof(float);

    /// <summary>A buffer to write a gradient into; contents are undefined.</summary>
    public Tensor Rent()
    {
        if (_free.TryPop(out var buffer)) return buffer;
        buffer = empty(Length, dtype: ScalarType.Float32, device: _device).DetachFromDisposeScope();
        _all.Add(buffer);
        return buffer;
    }

    public void Release(Tensor buffer) => _free.Push(buffer);

    /// <summary>Makes each parameter's gradient a view of its slice of <paramref name="flat"/>.</summary>
    public void BindTo(Tensor flat)
    {
        using var scope = NewDisposeScope();
        for (var i = 0; i < _parameters.Count; i++)
        {
            var p = _parameters[i].Parameter;
            p.grad = flat.narrow(0, _offsets[i], p.numel()).view(p.shape);
        }
    }

    public void Dispose()
    {
        foreach (var (_, p) in _parameters) p.grad = null;
        foreach (var buffer in _all) buffer.Dispose();
        _all.Clear();
        _free.Clear();
    }
}
