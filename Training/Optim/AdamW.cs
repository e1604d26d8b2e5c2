using Elastic.Jobs;
using TorchSharp;
using TorchSharp.Modules;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Optim;

/// <summary>
/// AdamW (decoupled weight decay), the same arithmetic as torch.optim.AdamW. Weight decay applies to the parameters
/// the model marks (matrices and embeddings, never LayerNorm gains or biases). The parameters become views of one flat buffer and the
/// moments are flat too, so a step is a handful of operations over the whole buffer (on a GPU, where launches rather
/// than arithmetic bound a per-parameter step) or over cache-sized slices of it (on a CPU) instead of several per
/// parameter. Every operation is elementwise, so each value gets the arithmetic it got per parameter. Moments are also exposed per parameter name, as views, so that
/// checkpoints save and reshard them like the parameters.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly OptimizerSpec _spec;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _parameters;
    private readonly IReadOnlyList<(string Name, Tensor M, Tensor V)> _moments;
    private readonly Tensor _flat;
    private readonly IReadOnlyList<(long Offset, long Length)> _owned;
    private readonly bool _ownedOnly;
    private readonly Tensor _m;
    private readonly Tensor _v;
    // The runs of the flat buffer that weight decay applies to (neighbouring decayed parameters merged).
    private readonly IReadOnlyList<(long Start, long Length)> _decayRuns;
    // Elements per pass: on a GPU the whole buffer (one launch per operation); on a CPU a slice whose buffers stay in
    // cache across the step's operations (whole-buffer passes would stream every buffer through memory each time).
    private readonly long _chunk;

    // Explicit scalars, owned by the optimizer: a Scalar made implicitly from a number is freed by its
    // finalizer, which can run while the native call that reads it is still in flight.
    private readonly Scalar _beta1;
    private readonly Scalar _oneMinusBeta1;
    private readonly Scalar _beta2;
    private readonly Scalar _oneMinusBeta2;
    private readonly Scalar _eps;

    /// <param name="parameters">Every parameter, in the order of the flat gradients the trainer passes to <see cref="Step"/>.</param>
    /// <param name="owned">The runs of that order (whole parameters) this optimizer updates and keeps moments for (ZeRO's part
    /// of a data-parallel rank); null: all. The other parameters are left to be filled by their owners.</param>
    /// <param name="ownedOnly">Keep only the owned parameters' storage (ZeRO 3): the flat buffer holds the owned runs one after
    /// another, and the other parameters are left as they are, for their gatherer to release.</param>
    public AdamW(IEnumerable<(string Name, Parameter Parameter, bool Decay)> parameters, OptimizerSpec spec, IReadOnlyList<(long Offset, long Length)>? owned = null,
        bool ownedOnly = false)
    {
        _spec = spec;
        var all = parameters.ToList();
        _parameters = all.Select(p => (p.Name, p.Parameter)).ToList();
        DecayedParameters = all.Where(p => p.Decay).Select(p => p.Name).ToList();
        var device = _parameters.Count > 0 ? _parameters[0].Parameter.device : CPU;
        if (_parameters.FirstOrDefault(p => p.Parameter.device.type != device.type || p.Parameter.device.index != device.index) is { Name: { } elsewhere })
            throw new ArgumentException($"parameter {elsewhere} is on another device than {device}", nameof(parameters));
        var total = _parameters.Sum(p => p.Parameter.numel());
        _owned = owned ?? [(0, total)];
        _ownedOnly = ownedOnly;
        var momentCount = _owned.Sum(r => r.Length);
        _flat = empty(ownedOnly ? momentCount : total, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        _chunk = device.type == DeviceType.CPU ? CpuChunk : Math.Max(total, 1);
        _m = zeros(momentCount, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        _v = zeros(momentCount, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        var decayRuns = new List<(long Start, long Length)>();
        var moments = new List<(string, Tensor, Tensor)>();
        using (no_grad())
        {
            long offset = 0;
            foreach (var (name, p, decays) in all)
            {
                var n = p.numel();
                var at = MomentOffset(offset, n);
                // Where the parameter lives in the flat buffer: its own offset, or, keeping only owned ones, its moments' offset.
                var home = ownedOnly ? at : offset;
                if (home is { } h)
                    using (var view = _flat.narrow(0, h, n).view(p.shape))
                    {
                        view.copy_(p);
                        p.set_(view);
                    }
                if (at is { } momentAt)
                {
                    moments.Add((name, Slice(_m, momentAt, p.shape), Slice(_v, momentAt, p.shape)));
                    if (decays && spec.WeightDecay != 0)
                    {
                        var start = home!.Value;
                        if (decayRuns.Count > 0 && decayRuns[^1].Start + decayRuns[^1].Length == start) decayRuns[^1] = (decayRuns[^1].Start, decayRuns[^1].Length + n);
                        else decayRuns.Add((start, n));
                    }
                }
                offset += n;
            }
        }
        _moments = moments;
        _decayRuns = decayRuns;
        _beta1 = spec.Beta1.ToScalar();
        _oneMinusBeta1 = (1 - spec.Beta1).ToScalar();
        _beta2 = spec.Beta2.ToScalar();
        _oneMinusBeta2 = (1 - spec.Beta2).ToScalar();
        _eps = spec.Eps.ToScalar();
    }

    /// <summary>Where the moments of the parameter at [offset, offset + n) start, or null when it is not owned; a parameter is owned whole or not at all.</summary>
    private long? MomentOffset(long offset, long n)
    {
        long at = 0;
        foreach (var (start, length) in _owned)
        {
            if (offset >= start && offset + n <= start + length) return at + offset - start;
            if (offset < start + length && start < offset + n)
                throw new ArgumentException($"the owned run [{start}, +{length}) cuts the parameter at [{offset}, +{n})", "owned");
            at += length;
        }
        return null;
    }

    private const long CpuChunk = 1 << 20;

    /// <summary>Optimizer steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Every parameter as one flat fp32 buffer (the parameters are views of it), in the order of the flat gradients; keeping only owned ones, those.</summary>
    public Tensor FlatParameters => _flat;

    /// <summary>Bytes of the first and second moments this optimizer keeps.</summary>
    public long MomentBytes => (_m.numel() + _v.numel()) * sizeof(float);

    /// <summary>The first and second moment of every owned parameter, by parameter name (what a checkpoint saves besides the parameters).</summary>
    public IEnumerable<(string Name, Tensor M, Tensor V)> Moments => _moments;

    /// <summary>Continues from a checkpoint taken after <paramref name="steps"/> steps (the moments are restored separately).</summary>
    public void RestoreStepCount(long steps) => StepCount = steps;

    /// <summary>Names of the parameters that get weight decay.</summary>
    public IReadOnlyList<string> DecayedParameters { get; }

    /// <summary>
    /// Updates every parameter with learning rate <paramref name="lr"/> from <paramref name="flatGradient"/> (all gradients
    /// in parameter order, as one fp32 vector), or, without it, from each parameter's .grad.
    /// </summary>
    public void Step(double lr, Tensor? flatGradient = null)
    {
        StepCount++;
        using var decay = (1 - lr * _spec.WeightDecay).ToScalar();
        using var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(_spec.Beta2, StepCount)).ToScalar();
        using var stepSize = (-lr / (1 - Math.Pow(_spec.Beta1, StepCount))).ToScalar();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = flatGradient ?? cat(_parameters.Select(p => (p.Parameter.grad ?? throw new InvalidOperationException($"parameter {p.Name} has no gradient")).view(-1)).ToList(), 0);
        foreach (var (start, length) in _decayRuns) _flat.narrow(0, start, length).mul_(decay);
        long momentStart = 0;
        foreach (var (offset, runLength) in _owned)
        {
            for (long start = 0; start < runLength; start += _chunk)
            {
                using var chunkScope = NewDisposeScope();
                var length = Math.Min(_chunk, runLength - start);
                var (p, grad) = (_flat.narrow(0, (_ownedOnly ? momentStart : offset) + start, length), g.narrow(0, offset + start, length));
                var (m, v) = (_m.narrow(0, momentStart + start, length), _v.narrow(0, momentStart + start, length));
                m.mul_(_beta1).add_(grad, alpha: _oneMinusBeta1);
                v.mul_(_beta2).addcmul_(grad, grad, value: _oneMinusBeta2);
                var denom = v.sqrt().div_(biasCorrection2Sqrt).add_(_eps, alpha: One);
                p.addcdiv_(m, denom, value: stepSize);
            }
            momentStart += runLength;
        }
    }

    private static Tensor Slice(Tensor flat, long offset, long[] shape) => flat.narrow(0, offset, shape.Aggregate(1L, (a, b) => a * b)).view(shape).DetachFromDisposeScope();

    public void Dispose()
    {
        foreach (var (_, m, v) in _moments)
        {
            m.Dispose();
            v.Dispose();
        }
        foreach (var tensor in new[] { _flat, _m, _v }) tensor.Dispose();
        foreach (var scalar in new[] { _beta1, _oneMinusBeta1, _beta2, _oneMinusBeta2, _eps }) scalar.Dispose();
    }
}
