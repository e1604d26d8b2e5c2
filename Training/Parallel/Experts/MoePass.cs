using Elastic.Jobs;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// One forward of a MoE layer and, when gradients are wanted, what its backward needs: the router's graph (logits,
/// gates, the combine of the experts' outputs, the balancing and z losses) over leaves of the tokens and router, and each
/// expert's graph over a leaf of its rows and of its weights. The experts' outputs enter the combine as constants, so
/// the router's backward never reaches them; each expert's backward is driven with its rows' output gradient times
/// their gates. Input gradients are then added in expert order.
/// </summary>
internal sealed class MoePass : IDisposable
{
    private readonly List<Tensor> _kept = [];
    private readonly List<ExpertRun> _runs = [];
    private readonly IReadOnlyList<ExpertWeights> _experts;
    private readonly long[] _tokensShape;
    private readonly long[] _routerShape;
    private readonly Device _device;
    private Tensor? _tokens, _router, _combined, _routerLoss;

    private MoePass(IReadOnlyList<ExpertWeights> experts, Tensor tokens, Tensor router) =>
        (_experts, _tokensShape, _routerShape, _device) = (experts, tokens.shape, router.shape, tokens.device);

    /// <summary>The layer's output [N, d], fp32.</summary>
    public Tensor Output { get; private set; } = null!;

    public ExpertLayerLoad Load { get; private set; } = null!;

    /// <summary>One held expert's share of the pass: its token rows, their gates, the leaves of its rows and weights, its output.</summary>
    private sealed record ExpertRun(int Index, Tensor Rows, Tensor Gates, Tensor Input, IReadOnlyList<Tensor> Weights, Tensor Output);

    public static MoePass Forward(MoeSpec spec, LinearOp linear, Tensor x, Tensor router, IReadOnlyList<ExpertWeights> experts, bool track)
    {
        var pass = new MoePass(experts, x, router);
        using var scope = NewDisposeScope();
        using var mode = track ? enable_grad() : no_grad();
        var (n, e, k) = ((int)x.shape[0], spec.Experts, spec.TopK);
        var tokens = pass.Leaf(x, track);
        var routerLeaf = pass.Leaf(router, track);
        var logits = nn.functional.linear(tokens, routerLeaf);
        var probabilities = nn.functional.softmax(logits, 1);
        var routing = ExpertRouting.Decide(probabilities.detach().cpu().data<float>().ToArray(), n, e, k, spec.CapacityFactor);
        var chosen = tensor(Enumerable.Range(0, n * k).Select(i => (long)routing.Choice(i / k, i % k)).ToArray(), [n, k], device: x.device);
        var gates = probabilities.gather(1, chosen);
        // One choice keeps its probability (so the router learns from it); several are renormalised to sum to one.
        if (k > 1) gates = gates.div(gates.sum(1, keepdim: true));
        var flatGates = gates.reshape(-1);

        // Balancing loss E x sum_i f_i P_i (f from the choices, P differentiable) and z-loss mean(logsumexp(logits)^2).
        var share = tensor(routing.Load.Select(c => (float)c / (n * k)).ToArray(), device: x.device);
        using var expertCount = ((double)e).ToScalar();
        var aux = probabilities.mean([0]).mul(share).sum().mul(expertCount);
        var logSumExp = logits.logsumexp(1);
        var z = logSumExp.mul(logSumExp).mean();
        using var auxCoefficient = spec.AuxLoss.ToScalar();
        using var zCoefficient = spec.ZLoss.ToScalar();
        pass.Load = new ExpertLayerLoad(-1, routing.Load, routing.Dropped, n, aux.item<float>(), z.item<float>());

        var input = x.detach();
        var combined = zeros([n, x.shape[1]], dtype: ScalarType.Float32, device: x.device);
        foreach (var expert in experts)
        {
            var taken = routing.TokensOf(expert.Expert);
            if (taken.Count == 0) continue;
            var slots = routing.SlotsOf(expert.Expert);
            var rows = tensor(taken.Select(t => (long)t).ToArray(), device: x.device);
            var at = tensor(taken.Select((t, i) => (long)t * k + slots[i]).ToArray(), device: x.device);
            var rowsIn = pass.Leaf(input.index_select(0, rows), track);
            var weights = expert.All.Select(w => pass.Leaf(w, track)).ToList();
            var hidden = nn.functional.gelu(linear(rowsIn, weights[0][0], weights[1][0]), TorchSharp.Modules.GELU.Approximate.tanh);
            var output = linear(hidden, weights[2][0], weights[3][0]);
            var gate = flatGates.index_select(0, at);
            combined = combined.index_add(0, rows, output.detach().to_type(ScalarType.Float32).mul(gate.unsqueeze(1)), One);
            if (track) pass._runs.Add(new ExpertRun(expert.Expert, pass.Keep(rows), pass.Keep(gate.detach()), rowsIn, weights, pass.Keep(output)));
        }
        pass.Output = combined.detach().clone().MoveToOuterDisposeScope();
        if (track)
        {
            pass._tokens = tokens;
            pass._router = routerLeaf;
            pass._combined = pass.Keep(combined);
            pass._routerLoss = pass.Keep(aux.mul(auxCoefficient).add(z.mul(zCoefficient), alpha: One));
        }
        return pass;
    }

    /// <summary>
    /// The gradients of the tokens, the router and every held expert's weights (in <see cref="ExpertWeights.All"/> order,
    /// zeros for an expert that took no token) for the output gradient <paramref name="output"/> [N, d]. The balancing and
    /// z losses are part of the training loss: their gradient is 1.
    /// </summary>
    public (Tensor Tokens, Tensor Router, IReadOnlyList<Tensor> Experts) Backward(Tensor output)
    {
        using var scope = NewDisposeScope();
        output = output.to_type(ScalarType.Float32);
        foreach (var run in _runs)
            run.Output.backward([output.index_select(0, run.Rows).mul(run.Gates.unsqueeze(1)).to_type(run.Output.dtype)]);
        autograd.backward([_combined!, _routerLoss!], [output, ones_like(_routerLoss!)]);
        var tokens = _tokens!.grad is { } routed ? routed.clone() : zeros(_tokensShape, device: _device);
        foreach (var run in _runs) tokens.index_add_(0, run.Rows, run.Input.grad!, One);
        var router = _router!.grad is { } g ? g.clone() : zeros(_routerShape, device: _device);
        var runs = _runs.ToDictionary(r => r.Index);
        var experts = _experts.SelectMany(expert => runs.TryGetValue(expert.Expert, out var run)
            ? run.Weights.Select((w, i) => w.grad?.clone() ?? zeros_like(expert.All.ElementAt(i)))
            : expert.All.Select(w => zeros_like(w))).ToList();
        return (tokens.MoveToOuterDisposeScope(), router.MoveToOuterDisposeScope(), experts.Select(t => t.MoveToOuterDisposeScope()).ToList());
    }

    /// <summary>Zeros in place of every gradient (a failed backward: the failure is reported after it).</summary>
    public IReadOnlyList<Tensor> ZeroGradients() =>
        [zeros(_tokensShape, device: _device), zeros(_routerShape, device: _device), .. _experts.SelectMany(e => e.All.Select(w => zeros_like(w)))];

    /// <summary>A leaf over <paramref name="t"/>'s values, taking gradients when tracked; kept for the backward.</summary>
    private Tensor Leaf(Tensor t, bool track) => track ? Keep(t.detach().requires_grad_(true)) : t.detach();

    private Tensor Keep(Tensor t)
    {
        _kept.Add(t.DetachFromDisposeScope());
        return t;
    }

    public void Dispose()
    {
        foreach (var t in _kept) t.Dispose();
        _kept.Clear();
        _runs.Clear();
    }
}
