using Elastic.Jobs;
using Elastic.Training.Parallel.Experts;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Tests.Training.Experts;

/// <summary>
/// The MoE layer's own backward (one autograd node with every sum in a fixed order) against plain autograd over the same
/// computation: the same gradients for tokens, router and every expert, the balancing and z losses included; dropped
/// choices contribute nothing.
/// </summary>
public sealed class MoeLayerTests
{
    private const int Tokens = 24, D = 8, F = 16;

    [Theory]
    [InlineData(2, null)]
    [InlineData(1, 1.0)]
    [InlineData(2, 0.5)]
    public void Its_gradients_are_those_of_plain_autograd_over_the_same_computation(int topK, double? capacity)
    {
        using var scope = NewDisposeScope();
        var spec = new MoeSpec { Experts = 4, TopK = topK, CapacityFactor = capacity, AuxLoss = 0.1, ZLoss = 0.01 };
        var generator = new Generator(11);
        Tensor Random(params long[] shape) => randn(shape, generator: generator).mul(0.5.ToScalar()).requires_grad_(true);
        var (x, router) = (Random(Tokens, D), Random(spec.Experts, D));
        var experts = Enumerable.Range(0, spec.Experts).Select(e => new ExpertWeights(e, [Random(1, F, D), Random(1, F), Random(1, D, F), Random(1, D)])).ToList();
        var upstream = randn([Tokens, D], generator: generator);
        var loads = new List<ExpertLayerLoad>();

        var output = new MoeLayer(spec, 0, ExpertMlps.Gelu((i, w, b) => nn.functional.linear(i, w, b)), loads.Add).Forward(new TensorParallelGroup(1, null), new ExpertGroup(spec.Experts, null), x, router, experts);
        output.mul(upstream).sum().backward();

        var leaves = new[] { x, router }.Concat(experts.SelectMany(e => e.All)).ToList();
        var plain = leaves.Select(t => t.detach().clone().requires_grad_(true)).ToList();
        var (expected, routing) = PlainForward(spec, plain[0], plain[1], plain.Skip(2).Chunk(4).ToList());
        expected.mul(upstream).sum().add(PlainRouterLoss(spec, plain[0], plain[1], routing), alpha: 1.0.ToScalar()).backward();

        Assert.True(allclose(output, expected, rtol: 1e-5, atol: 1e-6), "outputs differ");
        for (var i = 0; i < leaves.Count; i++)
        {
            var (mine, reference) = (leaves[i].grad ?? zeros_like(leaves[i]), plain[i].grad ?? zeros_like(plain[i]));
            Assert.True(allclose(mine, reference, rtol: 1e-4, atol: 1e-6), $"gradient {i} differs by {(mine - reference).abs().max().item<float>()}");
        }
        var load = Assert.Single(loads);
        Assert.Equal(Tokens, load.Tokens);
        Assert.Equal(Tokens * topK, load.Load.Sum());
        Assert.Equal(routing.Dropped, load.Dropped);
        if (capacity is not null) Assert.True(load.Dropped > 0 || load.Load.Max() <= routing.Capacity);
    }

    [Fact]
    public void A_token_whose_every_choice_was_dropped_comes_out_as_zeros()
    {
        using var scope = NewDisposeScope();
        // Every token prefers expert 0; capacity 1.0 with top-1 leaves expert 0 room for a quarter of them.
        var spec = new MoeSpec { Experts = 4, TopK = 1, CapacityFactor = 1.0 };
        var router = zeros(4, D);
        router[0].fill_(1.0.ToScalar());
        var x = ones(Tokens, D);
        var experts = Enumerable.Range(0, 4).Select(e => new ExpertWeights(e, [ones(1, F, D), ones(1, F), ones(1, D, F), ones(1, D)])).ToList();
        var loads = new List<ExpertLayerLoad>();

        using var noGrad = no_grad();
        var output = new MoeLayer(spec, 0, ExpertMlps.Gelu((i, w, b) => nn.functional.linear(i, w, b)), loads.Add).Forward(new TensorParallelGroup(1, null), new ExpertGroup(spec.Experts, null), x, router, experts);

        Assert.Equal(Tokens - Tokens / 4, Assert.Single(loads).Dropped);
        Assert.True(output[TensorIndex.Slice(0, Tokens / 4)].abs().min().item<float>() > 0);
        Assert.Equal(0f, output[TensorIndex.Slice(Tokens / 4)].abs().max().item<float>());
    }

    private static (Tensor Output, ExpertRouting Routing) PlainForward(MoeSpec spec, Tensor x, Tensor router, IReadOnlyList<Tensor[]> experts)
    {
        var probabilities = nn.functional.softmax(nn.functional.linear(x, router), 1);
        var routing = ExpertRouting.Decide(probabilities.detach().data<float>().ToArray(), Tokens, spec.Experts, spec.TopK, spec.CapacityFactor);
        var output = zeros(Tokens, D);
        for (var e = 0; e < spec.Experts; e++)
            for (var i = 0; i < routing.TokensOf(e).Count; i++)
            {
                var token = routing.TokensOf(e)[i];
                var choices = Enumerable.Range(0, spec.TopK).Select(s => (long)routing.Choice(token, s)).ToArray();
                var chosen = probabilities[token].index_select(0, tensor(choices));
                var gate = spec.TopK > 1 ? chosen[routing.SlotsOf(e)[i]] / chosen.sum() : chosen[0];
                var w = experts[e];
                var y = nn.functional.linear(nn.functional.gelu(nn.functional.linear(x[token].unsqueeze(0), w[0][0], w[1][0]), TorchSharp.Modules.GELU.Approximate.tanh), w[2][0], w[3][0]);
                output = output.index_add(0, tensor(new long[] { token }), y.mul(gate), 1.0.ToScalar());
            }
        return (output, routing);
    }

    private static Tensor PlainRouterLoss(MoeSpec spec, Tensor x, Tensor router, ExpertRouting routing)
    {
        var logits = nn.functional.linear(x, router);
        var probabilities = nn.functional.softmax(logits, 1);
        var share = tensor(routing.Load.Select(c => (float)c / (Tokens * spec.TopK)).ToArray());
        var aux = probabilities.mean([0]).mul(share).sum().mul(((double)spec.Experts).ToScalar());
        var lse = logits.logsumexp(1);
        return aux.mul(spec.AuxLoss.ToScalar()).add(lse.mul(lse).mean().mul(spec.ZLoss.ToScalar()), alpha: 1.0.ToScalar());
    }
}
