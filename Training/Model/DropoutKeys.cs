using Elastic.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// The dropout randomness of one micro-batch, keyed by (seed, step, global sample index), so a sample gets the
/// same masks whatever micro-batch, replica or rank it lands on. On a CPU each sample has its own generator and
/// the dropout sites draw from it in forward order. A CUDA tensor never meets a CPU generator (that mix crashes
/// libtorch, and TorchSharp can only make CPU generators): its masks come from the device's own generator,
/// reseeded by (seed, step, sample, site) before each sample's draw, see <see cref="CudaRandom"/>.
/// </summary>
public sealed class DropoutKeys : IDisposable
{
    private readonly ulong _seed;
    private readonly long _step;
    private readonly long[] _samples;
    private Generator[]? _generators;
    private ulong _site;

    public DropoutKeys(ulong seed, long step, ReadOnlySpan<long> globalSamples)
    {
        (_seed, _step, _samples) = (seed, step, globalSamples.ToArray());
    }

    /// <summary>
    /// Inverted dropout of <paramref name="x"/> with keep probability 1 - p; the result is fp32 unless x is wider. x is
    /// sequence-major, [rows, samples, ...], and holds rows [first, first + rows) of a sequence of <paramref name="length"/>:
    /// each sample's mask is drawn for the whole sequence and cut, so a row's mask is the same on every layout.
    /// </summary>
    public Tensor Apply(Tensor x, double p, long first, long length)
    {
        if (x.shape[1] != _samples.Length)
            throw new ArgumentException($"batch of {x.shape[1]} samples but dropout keys for {_samples.Length}", nameof(x));
        using var scope = NewDisposeScope();
        long[] sampleShape = [length, .. x.shape[2..]];
        var uniforms = x.device_type switch
        {
            DeviceType.CPU => CpuUniforms(sampleShape),
            DeviceType.CUDA => CudaRandom.Uniforms(x.device, [_samples.Length, .. sampleShape], i => SplitMix64.Derive(SampleKey(i), _site)),
            _ => throw new NotSupportedException($"dropout masks are drawn on cpu or cuda devices; this tensor is on {x.device}"),
        };
        _site++;
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var threshold = p.ToScalar();
        using var scale = (1.0 / (1.0 - p)).ToScalar();
        // The mask stays fp32: a bf16 activation times it is exact in fp32, and fp32 activations keep their bits.
        var keep = uniforms.narrow(1, first, x.shape[0]).transpose(0, 1).ge(threshold).to_type(ScalarType.Float32).mul_(scale);
        return x.mul(keep).MoveToOuterDisposeScope();
    }

    private ulong SampleKey(int i) => SplitMix64.Derive(_seed, RandomPurpose.Dropout, (ulong)_step, (ulong)_samples[i]);

    private Tensor CpuUniforms(long[] sampleShape)
    {
        // Made at the first CPU draw: a micro-batch on a CUDA device needs none.
        _generators ??= [.. Enumerable.Range(0, _samples.Length).Select(i => new Generator(SampleKey(i), CPU))];
        var uniforms = new Tensor[_generators.Length];
        for (var i = 0; i < _generators.Length; i++)
            uniforms[i] = rand(sampleShape, dtype: ScalarType.Float32, generator: _generators[i]);
        return stack(uniforms);
    }

    public void Dispose()
    {
        foreach (var g in _generators ?? []) g.Dispose();
    }
}
