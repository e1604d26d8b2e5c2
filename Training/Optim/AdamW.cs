using Elastic.Jobs;
using TorchSharp.Modules;
using static TorchSharp.torch;

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

    public AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, OptimizerSpec spec)
    {
        _spec = spec;
        _slots = parameters.Select(p => new Slot(p.Name, p.Parameter,
            zeros_like(p.Parameter).DetachFromDisposeScope(), zeros_like(p.Parameter).DetachFromDisposeScope(),
            Decay: p.Parameter.dim() >= 2)).ToList();
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
        var (b1, b2) = (_spec.Beta1, _spec.Beta2);
        var biasCorrection1 = 1 - Math.Pow(b1, StepCount);
        var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(b2, StepCount));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var slot in _slots)
        {
            var p = slot.Parameter;
            var g = p.grad ?? throw new InvalidOperationException($"parameter {slot.Name} has no gradient");
            if (slot.Decay && _spec.WeightDecay != 0) p.mul_(1 - lr * _spec.WeightDecay);
            slot.M.mul_(b1).add_(g, alpha: 1 - b1);
            slot.V.mul_(b2).addcmul_(g, g, value: 1 - b2);
            var denom = slot.V.sqrt().div_(biasCorrection2Sqrt).add_(_spec.Eps);
            p.addcdiv_(slot.M, denom, value: -lr / biasCorrection1);
        }
    }

    public void Dispose()
    {
        foreach (var slot in _slots)
        {
            slot.M.Dispose();
            slot.V.Dispose();
        }
    }

    private sealed record Slot(string Name, Parameter Parameter, Tensor M, Tensor V, bool Decay);
}
