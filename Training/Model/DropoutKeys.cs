using Elastic.Training.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// The dropout randomness of one micro-batch: one generator per sample, seeded by (seed, step, global
/// sample index). Each dropout site draws each sample's mask from that sample's own generator, so a
/// sample gets the same masks whatever micro-batch, replica or rank it lands on.
/// </summary>
public sealed class DropoutKeys : IDisposable
{
    private readonly Generator[] _generators;

    public DropoutKeys(ulong seed, long step, ReadOnlySpan<long> globalSamples)
    {
        _generators = new Generator[globalSamples.Length];
        for (var i = 0; i < globalSamples.Length; i++)
            _generators[i] = new Generator(SplitMix64.Derive(seed, RandomPurpose.Dropout, (ulong)step, (ulong)globalSamples[i]), CPU);
    }

    /// <summary>Inverted dropout of <paramref name="x"/> ([samples, ...]) with keep probability 1 - p.</summary>
    public Tensor Apply(Tensor x, double p)
    {
        if (x.shape[0] != _generators.Length)
            throw new ArgumentException($"batch of {x.shape[0]} samples but dropout keys for {_generators.Length}", nameof(x));
        var sampleShape = x.shape[1..];
        using var scope = NewDisposeScope();
        var uniforms = new Tensor[_generators.Length];
        for (var i = 0; i < _generators.Length; i++)
            uniforms[i] = rand(sampleShape, dtype: x.dtype, device: x.device, generator: _generators[i]);
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var threshold = p.ToScalar();
        using var scale = (1.0 / (1.0 - p)).ToScalar();
        var keep = stack(uniforms).ge_(threshold).to_type(x.dtype).mul_(scale);
        return x.mul(keep).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var g in _generators) g.Dispose();
    }
}
