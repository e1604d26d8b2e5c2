using Elastic.Jobs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Optim;

/// <summary>
/// AdamW (decoupled weight decay), the same arithmetic as torch.optim.AdamW. Weight decay applies to
/// matrices and embeddings only, never to LayerNorm gains or biases. Moments are kept per parameter name so
/// that checkpoints can save and reshard them like the parameters.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly OptimizerSpec _spec;
    private readonly List<Slot> _slots;

    // Explicit scalars, owned by the optimizer: a Scalar made implicitly from a number is freed by its
    // finalizer, which can run while the native call that reads it is still in flight.
    private readonly Scalar _beta1;
    private readonly Scalar _oneMinusBeta1;
    private readonly Scalar _beta2;
    private readonly Scalar _oneMinusBeta2;
    private readonly Scalar _eps;

    public AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, OptimizerSpec spec)
    {
        _spec = spec;
        _slots = parameters.Select(p => new Slot(p.Name, p.Parameter,
            zeros_like(p.Parameter).DetachFromDisposeScope(), zeros_like(p.Parameter).DetachFromDisposeScope(),
            Decay: p.Parameter.dim() >= 2)).ToList();
        _beta1 = spec.Beta1.ToScalar();
        _oneMinusBeta1 = (1 - spec.Beta1).ToScalar();
        _beta2 = spec.Beta2.ToScalar();
        _oneMinusBeta2 = (1 - spec.Beta2).ToScalar();
        _eps = spec.Eps.ToScalar();
    }

    /// <summary>Optimizer steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>The first and second moment of every parameter, by parameter name (what a checkpoint saves besides the parameters).</summary>
    public IEnumerable<(string Name, Tensor M, Tensor V)> Moments => _slots.Select(s => (s.Name, s.M, s.V));

    /// <summary>Continues from a checkpoint taken after <paramref name="steps"/> steps (the moments are restored separately).</summary>
    public void RestoreStepCount(long steps) => StepCount = steps;

    /// <summary>Names of the parameters that get weight decay.</summary>
    public IEnumerable<string> DecayedParameters => _slots.Where(s => s.Decay).Select(s => s.Name);

    /// <summary>Updates every parameter from its .grad with learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        using var decay = (1 - lr * _spec.WeightDecay).ToScalar();
        using var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(_spec.Beta2, StepCount)).ToScalar();
        using var stepSize = (-lr / (1 - Math.Pow(_spec.Beta1, StepCount))).ToScalar();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var slot in _slots)
        {
            var p = slot.Parameter;
            var g = p.grad ?? throw new InvalidOperationException($"parameter {slot.Name} has no gradient");
            if (slot.Decay && _spec.WeightDecay != 0) p.mul_(decay);
            slot.M.mul_(_beta1).add_(g, alpha: _oneMinusBeta1);
            slot.V.mul_(_beta2).addcmul_(g, g, value: _oneMinusBeta2);
            var denom = slot.V.sqrt().div_(biasCorrection2Sqrt).add_(_eps, alpha: One);
            p.addcdiv_(slot.M, denom, value: stepSize);
        }
    }

    public void Dispose()
    {
        foreach (var slot in _slots)
        {
            slot.M.Dispose();
            slot.V.Dispose();
        }
        foreach (var scalar in new[] { _beta1, _oneMinusBeta1, _beta2, _oneMinusBeta2, _eps }) scalar.Dispose();
    }

    private sealed record Slot(string Name, Parameter Parameter, Tensor M, Tensor V, bool Decay);
}
