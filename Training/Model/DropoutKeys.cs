using Elastic.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// The dropout randomness of one micro-batch, keyed by (seed, step, global sample index, dropout site), so a sample
/// gets the same masks whatever micro-batch, replica or rank it lands on, and a site the same mask whatever ran
/// before it (a pipeline stage that starts at layer k draws layer k's masks without the draws of layers before it).
/// The model numbers its sites by position (<see cref="Site"/>). On a CPU each (sample, site) draw has its own
/// generator. A CUDA tensor never meets a CPU generator (that mix crashes libtorch, and TorchSharp can only make CPU
/// generators): its masks come from the device's own generator, reseeded by the same key before each sample's draw,
/// see <see cref="CudaRandom"/>.
/// </summary>
public sealed class DropoutKeys
{
    private readonly ulong _seed;
    private readonly long _step;
    private readonly long[] _samples;

    public DropoutKeys(ulong seed, long step, ReadOnlySpan<long> globalSamples)
    {
        (_seed, _step, _samples) = (seed, step, globalSamples.ToArray());
    }

    /// <summary>
    /// The site of the dropout after the embeddings (0), or after the attention (kind 0) or MLP (kind 1) of block
    /// <paramref name="layer"/>.
    /// </summary>
    public static ulong Site(int? layer, int kind = 0) => layer is { } l ? 1 + 2 * (ulong)l + (ulong)kind : 0;

    /// <summary>
    /// Inverted dropout of <paramref name="x"/> at dropout site <paramref name="site"/> with keep probability 1 - p; the result
    /// is fp32 unless x is wider. x is sequence-major, [rows, samples, ...], and holds rows [first, first + rows) of a sequence
    /// of <paramref name="length"/>: each sample's mask is drawn for the whole sequence and cut, so a row's mask is the same
    /// on every layout.
    /// </summary>
    public Tensor Apply(Tensor x, double p, long first, long length, ulong site)
    {
        if (x.shape[1] != _samples.Length)
            throw new ArgumentException($"batch of {x.shape[1]} samples but dropout keys for {_samples.Length}", nameof(x));
        using var scope = NewDisposeScope();
        long[] sampleShape = [length, .. x.shape[2..]];
        var uniforms = x.device_type switch
        {
            DeviceType.CPU => CpuUniforms(sampleShape, site),
            DeviceType.CUDA => CudaRandom.Uniforms(x.device, [_samples.Length, .. sampleShape], i => SplitMix64.Derive(SampleKey(i), site)),
            _ => throw new NotSupportedException($"dropout masks are drawn on cpu or cuda devices; this tensor is on {x.device}"),
        };
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var threshold = p.ToScalar();
        using var scale = (1.0 / (1.0 - p)).ToScalar();
        // The mask stays fp32: a bf16 activation times it is exact in fp32, and fp32 activations keep their bits.
        var keep = uniforms.narrow(1, first, x.shape[0]).transpose(0, 1).ge(threshold).to_type(ScalarType.Float32).mul_(scale);
        return x.mul(keep).MoveToOuterDisposeScope();
    }

    private ulong SampleKey(int i) => SplitMix64.Derive(_seed, RandomPurpose.Dropout, (ulong)_step, (ulong)_samples[i]);

    private Tensor CpuUniforms(long[] sampleShape, ulong site)
    {
        var uniforms = new Tensor[_samples.Length];
        for (var i = 0; i < _samples.Length; i++)
        {
            using var generator = new Generator(SplitMix64.Derive(SampleKey(i), site), CPU);
            uniforms[i] = rand(sampleShape, dtype: ScalarType.Float32, generator: generator);
        }
        return stack(uniforms);
    }
}
