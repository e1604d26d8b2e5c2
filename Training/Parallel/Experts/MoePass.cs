using TorchSharp;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// One forward of a MoE layer and, when gradients are wanted, what its backward needs. This rank is a source (its
/// micro-batch's tokens are routed and combined here) and an expert host (it runs its experts on the rows every source of
/// its expert group sends). The router's graph (logits, gates, the combine of the experts' outputs, the balancing and
/// z losses) is over leaves of the tokens and router; each (source, expert) has its own graph over leaves of its rows and
/// weights, run as one matmul over exactly that micro-batch's rows for the expert, whichever rank hosts it. The experts'
/// outputs enter the combine as constants, so the router's backward never reaches them; each expert's backward is driven
/// with its rows' output gradient times their gates. Input gradients are added in expert order.
/// </summary>
internal sealed class MoePass : IDisposable
{
    private readonly List<Tensor> _kept = [];
    private readonly MoeLayer _layer;
    private readonly ExpertGroup _group;
    private readonly IReadOnlyList<ExpertWeights> _experts;
    private readonly long[] _tokensShape, _routerShape;
    private readonly Device _device;
    private readonly long _width;
    private Routed[] _routed = [];
    private int[][] _sent = [];
    private IReadOnlyList<int[]> _received = [];
    private readonly Dictionary<(int Source, int Local), Hosted> _hosted = [];
    private Tensor? _tokens, _router, _combined, _routerLoss;

    private MoePass(MoeLayer layer, ExpertGroup group, IReadOnlyList<ExpertWeights> experts, Tensor tokens, Tensor router) =>
        (_layer, _group, _experts, _tokensShape, _routerShape, _device, _width) = (layer, group, experts, tokens.shape, router.shape, tokens.device, tokens.shape[1]);

    /// <summary>The layer's output [N, d], fp32.</summary>
    public Tensor Output { get; private set; } = null!;

    public ExpertLayerLoad Load { get; private set; } = null!;

    /// <summary>One expert's share of this rank's tokens: their rows (token order) and gates.</summary>
    private sealed record Routed(Tensor Rows, Tensor Gates);

    /// <summary>One source's rows for one hosted expert: the leaves of its rows and weights, and its output.</summary>
    private sealed record Hosted(Tensor Input, IReadOnlyList<Tensor> Weights, Tensor Output);

    public static MoePass Forward(MoeLayer layer, ExpertGroup group, Tensor x, Tensor router, IReadOnlyList<ExpertWeights> experts, bool track)
    {
        var pass = new MoePass(layer, group, experts, x, router);
        using var scope = NewDisposeScope();
        using var mode = track ? enable_grad() : no_grad();
        var spec = layer.Spec;
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
        pass.Load = new ExpertLayerLoad(layer.Layer, routing.Load, routing.Dropped, n, aux.item<float>(), z.item<float>());

        // Source: every expert's rows and gates, sent to the rank hosting it.
        var input = x.detach();
        var routed = Enumerable.Range(0, e).Select(expert =>
        {
            var taken = routing.TokensOf(expert);
            var slots = routing.SlotsOf(expert);
            var rows = tensor(taken.Select(t => (long)t).ToArray(), device: x.device);
            var at = tensor(taken.Select((t, i) => (long)t * k + slots[i]).ToArray(), device: x.device);
            return (Rows: rows, Gates: flatGates.index_select(0, at));
        }).ToList();
        pass._sent = Enumerable.Range(0, group.Degree).Select(r => group.ExpertsOf(r).Select(expert => routing.TokensOf(expert).Count).ToArray()).ToArray();
        pass._received = group.ExchangeCounts(pass._sent);
        var arrived = group.ExchangeRows(PerRank(group, expert => input.index_select(0, routed[expert].Rows)), pass._received, pass._width, x.device);

        // Host: each source's rows for each hosted expert, one matmul per (source, expert).
        var outputs = arrived.Select((blocks, source) => (IReadOnlyList<Tensor>)blocks.Select((rows, local) =>
        {
            if (rows.shape[0] == 0) return rows;
            var rowsIn = pass.Leaf(rows, track);
            var weights = experts[local].All.Select(w => pass.Leaf(w, track)).ToList();
            var output = layer.Mlp(rowsIn, weights);
            if (track) pass._hosted[(source, local)] = new Hosted(rowsIn, weights, pass.Keep(output));
            return output.detach().to_type(ScalarType.Float32);
        }).ToList()).ToList();
        var returned = group.ExchangeRows(outputs, pass._sent, pass._width, x.device);

        // Source: the experts' outputs weighted by their gates, added in expert order.
        var combined = zeros([n, pass._width], dtype: ScalarType.Float32, device: x.device);
        for (var expert = 0; expert < e; expert++)
            if (routing.TokensOf(expert).Count > 0)
                combined = combined.index_add(0, routed[expert].Rows, Returned(group, returned, expert).mul(routed[expert].Gates.unsqueeze(1)), One);
        pass.Output = combined.detach().clone().MoveToOuterDisposeScope();
        if (track)
        {
            pass._routed = routed.Select(r => new Routed(pass.Keep(r.Rows), pass.Keep(r.Gates.detach()))).ToArray();
            pass._tokens = tokens;
            pass._router = routerLeaf;
            pass._combined = pass.Keep(combined);
            pass._routerLoss = pass.Keep(aux.mul(auxCoefficient).add(z.mul(zCoefficient), alpha: One));
        }
        return pass;
    }

    /// <summary>
    /// The gradients of the tokens and the router, and of the held experts' weights (in <see cref="ExpertWeights.All"/> order;
    /// null when they go to <see cref="MoeLayer.Gradients"/>, one sum per source) for the output gradient
    /// <paramref name="output"/> [N, d]. The balancing and z losses are part of the training loss: their gradient is 1.
    /// </summary>
    public (Tensor Tokens, Tensor Router, IReadOnlyList<Tensor?> Experts) Backward(Tensor output)
    {
        using var scope = NewDisposeScope();
        output = output.to_type(ScalarType.Float32);
        var device = output.device;
        var arrived = _group.ExchangeRows(PerRank(_group, expert => output.index_select(0, _routed[expert].Rows).mul(_routed[expert].Gates.unsqueeze(1))), _received, _width, device);
        var sink = _layer.Gradients;
        var weights = _experts.Select(expert => expert.All.Select(_ => (Tensor?)null).ToArray()).ToArray();
        var inputs = arrived.Select((blocks, source) => (IReadOnlyList<Tensor>)blocks.Select((gradient, local) =>
        {
            if (!_hosted.TryGetValue((source, local), out var hosted)) return gradient;
            hosted.Output.backward([gradient.to_type(hosted.Output.dtype)]);
            var grads = hosted.Weights.Select(w => w.grad!).ToList();
            if (sink is null) weights[local] = [.. grads.Select(g => g.clone())];
            else sink.Add(_layer.Layer, source, _experts[local].Expert, grads);
            return hosted.Input.grad!;
        }).ToList()).ToList();
        var returned = _group.ExchangeRows(inputs, _sent, _width, device);

        autograd.backward([_combined!, _routerLoss!], [output, ones_like(_routerLoss!)]);
        var tokens = _tokens!.grad is { } routed ? routed.clone() : zeros(_tokensShape, device: _device);
        for (var expert = 0; expert < _routed.Length; expert++)
            if (_routed[expert].Rows.shape[0] > 0) tokens.index_add_(0, _routed[expert].Rows, Returned(_group, returned, expert), One);
        var router = _router!.grad is { } g ? g.clone() : zeros(_routerShape, device: _device);
        var experts = sink is not null ? _experts.SelectMany(expert => expert.All.Select(_ => (Tensor?)null)).ToList()
            : _experts.SelectMany((expert, local) => expert.All.Select((w, i) => weights[local][i] ?? zeros_like(w))).Select(t => (Tensor?)t.MoveToOuterDisposeScope()).ToList();
        return (tokens.MoveToOuterDisposeScope(), router.MoveToOuterDisposeScope(), experts);
    }

    /// <summary>Zeros in place of every gradient (a failed backward: the failure is reported after it).</summary>
    public IReadOnlyList<Tensor> ZeroGradients() => [zeros(_tokensShape, device: _device), zeros(_routerShape, device: _device), .. _experts.SelectMany(e => e.All.Select(w => zeros_like(w)))];

    /// <summary>Per expert rank, the blocks <paramref name="block"/> makes for each of its experts, in order.</summary>
    private static IReadOnlyList<IReadOnlyList<Tensor>> PerRank(ExpertGroup group, Func<int, Tensor> block) =>
        Enumerable.Range(0, group.Degree).Select(r => (IReadOnlyList<Tensor>)group.ExpertsOf(r).Select(block).ToList()).ToList();

    /// <summary>Expert <paramref name="expert"/>'s block among what its host returned.</summary>
    private static Tensor Returned(ExpertGroup group, IReadOnlyList<IReadOnlyList<Tensor>> returned, int expert) =>
        returned[group.OwnerOf(expert)][expert % group.PerRank];

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
        _hosted.Clear();
    }
}
