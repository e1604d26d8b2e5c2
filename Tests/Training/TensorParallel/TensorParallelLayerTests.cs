using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;
using static Elastic.Tests.Training.TensorParallel.TensorParallelRanks;
using static TorchSharp.torch;

namespace Elastic.Tests.Training.TensorParallel;

/// <summary>
/// Tensor-parallel layers at tp 1, 2 and 4 over S = 4 virtual shards, with and without sequence parallelism: forward
/// results and every gradient are the bits of the one-device computation (tp 1), and that computation is the plain
/// model's math (checked against torch's own layers to rounding).
/// </summary>
public sealed class TensorParallelLayerTests
{
    private const int S = 4, T = 8, B = 2, D = 16, Hidden = 32, Vocab = 32;

    public static TheoryData<int, bool> Layouts => new() { { 1, true }, { 2, false }, { 2, true }, { 4, false }, { 4, true } };

    [Theory, MemberData(nameof(Layouts))]
    public async Task LayerNorm_column_and_row_parallel_layers_give_one_device_bits(int tp, bool sequenceParallel)
    {
        var reference = Merge(await Run(1, S, g => Mlp(g, sequenceParallel: false)), new HashSet<string>());
        var layout = Merge(await Run(tp, S, g => Mlp(g, sequenceParallel)), sequenceParallel ? new HashSet<string> { "y", "x.grad" } : new HashSet<string>());

        Assert.Equal(reference.Keys.Order(), layout.Keys.Order());
        Assert.All(reference, r => Assert.True(r.Value.SequenceEqual(layout[r.Key]), $"{r.Key} differs at tp {tp}, sequence parallel {sequenceParallel}"));
    }

    [Theory, MemberData(nameof(Layouts))]
    public async Task Vocab_parallel_embedding_head_and_cross_entropy_give_one_device_bits(int tp, bool sequenceParallel)
    {
        var reference = Merge(await Run(1, S, g => Vocabulary(g, sequenceParallel: false)), new HashSet<string>());
        var layout = Merge(await Run(tp, S, g => Vocabulary(g, sequenceParallel)), new HashSet<string>());

        Assert.Equal(reference.Keys.Order(), layout.Keys.Order());
        Assert.All(reference, r => Assert.True(r.Value.SequenceEqual(layout[r.Key]), $"{r.Key} differs at tp {tp}, sequence parallel {sequenceParallel}"));
    }

    [Fact]
    public async Task The_sharded_computation_is_the_plain_layers_math()
    {
        var sharded = (await Run(1, S, g => Mlp(g, sequenceParallel: false)))[0];
        var plain = await TestSpecs.OnDevice(() =>
        {
            var w = Inputs.Make();
            var x = w.X.clone().requires_grad_();
            var w1 = w.W1.clone().requires_grad_();
            var a = nn.functional.layer_norm(x, [D], w.LnW, w.LnB);
            var y = nn.functional.linear(nn.functional.gelu(nn.functional.linear(a, w1, w.B1)), w.W2, w.B2);
            y.backward([w.Gy]);
            return (Y: y.detach().clone(), X: x.grad!.clone(), W1: w1.grad!.clone());
        });

        Assert.True(FromBits(sharded["y"], plain.Y.shape).allclose(plain.Y, rtol: 1e-5, atol: 1e-6));
        Assert.True(FromBits(sharded["x.grad"], plain.X.shape).allclose(plain.X, rtol: 1e-4, atol: 1e-6));
        Assert.True(FromBits(sharded["w1[1]"], [Hidden / S, D]).allclose(plain.W1.narrow(0, Hidden / S, Hidden / S), rtol: 1e-4, atol: 1e-6));
    }

    [Fact]
    public async Task The_vocab_parallel_loss_is_the_plain_cross_entropy()
    {
        var sharded = (await Run(1, S, g => Vocabulary(g, sequenceParallel: false)))[0];
        var plain = await TestSpecs.OnDevice(() =>
        {
            var w = Inputs.Make();
            var x = w.Embedding.index_select(0, w.Tokens.flatten()).view(T, B, D);
            var logits = nn.functional.layer_norm(x, [D], w.LnW, w.LnB).matmul(w.Embedding.t());
            return nn.functional.cross_entropy(logits.view(-1, Vocab), w.Targets.flatten()).item<float>();
        });

        Assert.Equal(plain, FromBits(sharded["loss"], []).item<float>(), 5);
    }

    [Fact]
    public async Task A_shard_whose_output_never_reaches_the_loss_gets_a_zero_gradient_and_the_process_lives()
    {
        var matches = await TestSpecs.OnDevice(() =>
        {
            var group = new TensorParallelGroup(S, null);
            var w = Inputs.Make();
            var x = w.X.clone().requires_grad_();
            const int width = Hidden / S;
            var weights = Enumerable.Range(0, S).Select(s => Leaf(w.W1, 0, s * width, width)).ToList();
            Tensor used;
            // As in the model, forward's temporaries are gone (their scope ended) by the time backward runs.
            using (var forward = NewDisposeScope())
                used = ColumnParallelLinear.Forward(group, x, weights, null, gather: false)[1].MoveToOuterDisposeScope();
            used.sum().backward(); // shards 0, 2 and 3 get no gradient at all
            group.ThrowIfFailed();
            // The other shards count as zero: the input gradient is shard 1's alone.
            return x.grad!.allclose(weights[1].detach().sum([0L], keepdim: false).expand(T, B, D), rtol: 1e-5, atol: 1e-6);
        });
        Assert.True(matches);
    }

    private static Dictionary<string, int[]> Mlp(TensorParallelGroup group, bool sequenceParallel)
    {
        var w = Inputs.Make();
        var rows = T / group.Degree;
        var x = sequenceParallel ? Leaf(w.X, 0, group.Rank * rows, rows) : w.X.clone().requires_grad_();
        var (lnW, lnB, b2) = (w.LnW.clone().requires_grad_(), w.LnB.clone().requires_grad_(), w.B2.clone().requires_grad_());
        const int width = Hidden / S;
        var w1 = group.LocalShards.Select(s => Leaf(w.W1, 0, s * width, width)).ToList();
        var b1 = group.LocalShards.Select(s => Leaf(w.B1, 0, s * width, width)).ToList();
        var w2 = group.LocalShards.Select(s => Leaf(w.W2, 1, s * width, width)).ToList();

        var sequence = Part(group, sequenceParallel);
        var a = SequenceChunks.LayerNorm(group, x, lnW, lnB, sequence);
        var h = ColumnParallelLinear.Forward(group, a, w1, b1, sequenceParallel).Select(t => nn.functional.gelu(t)).ToList();
        var y = RowParallelLinear.Forward(group, h, w2, b2, sequence);
        y.backward([sequenceParallel ? group.OwnPart(w.Gy) : w.Gy]);
        group.ThrowIfFailed();

        var results = new Dictionary<string, int[]>
        {
            ["y"] = Bits(y), ["x.grad"] = Bits(x.grad!), ["ln.weight"] = Bits(lnW.grad!), ["ln.bias"] = Bits(lnB.grad!), ["b2"] = Bits(b2.grad!),
        };
        foreach (var (s, i) in group.LocalShards.Select((s, i) => (s, i)))
        {
            results[$"w1[{s}]"] = Bits(w1[i].grad!);
            results[$"b1[{s}]"] = Bits(b1[i].grad!);
            results[$"w2[{s}]"] = Bits(w2[i].grad!);
        }
        return results;
    }

    /// <summary>Embedding, LayerNorm, the tied head and the loss: the ends of a GPT.</summary>
    private static Dictionary<string, int[]> Vocabulary(TensorParallelGroup group, bool sequenceParallel)
    {
        var w = Inputs.Make();
        const int rows = Vocab / S;
        var shards = group.LocalShards.Select(s =>
        {
            var table = nn.Embedding(rows, D);
            using (no_grad()) table.weight!.copy_(w.Embedding.narrow(0, s * rows, rows));
            return table;
        }).ToList();
        var (lnW, lnB) = (w.LnW.clone().requires_grad_(), w.LnB.clone().requires_grad_());

        var x = VocabParallelEmbedding.Forward(group, w.Tokens, shards, sequenceParallel);
        var h = SequenceChunks.LayerNorm(group, x, lnW, lnB, Part(group, sequenceParallel));
        var logits = ColumnParallelLinear.Forward(group, h, shards.Select(e => (Tensor)e.weight!).ToList(), null, sequenceParallel);
        var loss = VocabParallelCrossEntropy.Loss(group, logits, w.Targets);
        loss.backward();
        group.ThrowIfFailed();

        var results = new Dictionary<string, int[]> { ["loss"] = Bits(loss), ["ln.weight"] = Bits(lnW.grad!), ["ln.bias"] = Bits(lnB.grad!) };
        foreach (var (s, i) in group.LocalShards.Select((s, i) => (s, i))) results[$"embedding[{s}]"] = Bits(shards[i].weight!.grad!);
        return results;
    }

    /// <summary>The rows a rank holds: its part of the sequence in its S/tp chunks when split, else all of it in S chunks.</summary>
    private static SequencePart Part(TensorParallelGroup group, bool split) =>
        split ? new SequencePart(group.Rank * T / group.Degree, T, group.ShardsPerRank, true) : SequencePart.Whole(T, S);

    private static Tensor FromBits(int[] bits, long[] shape) => tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(bits).ToArray(), shape);

    /// <summary>The same values on every rank: drawn from one seed, sequence-major.</summary>
    private sealed record Inputs(Tensor X, Tensor LnW, Tensor LnB, Tensor W1, Tensor B1, Tensor W2, Tensor B2, Tensor Gy, Tensor Embedding, Tensor Tokens, Tensor Targets)
    {
        public static Inputs Make()
        {
            using var g = new Generator(20261127);
            // Explicit scalars: an implicit one can be freed by a collection while the call that reads it runs.
            using var one = 1.0.ToScalar();
            using var tenth = 0.1.ToScalar();
            using var fifth = 0.2.ToScalar();
            using var half = 0.5.ToScalar();
            Tensor Normal(params long[] shape) => randn(shape, generator: g);
            return new Inputs(Normal(T, B, D), Normal(D).mul_(tenth).add_(one), Normal(D).mul_(tenth), Normal(Hidden, D).mul_(fifth), Normal(Hidden).mul_(tenth),
                Normal(D, Hidden).mul_(fifth), Normal(D).mul_(tenth), Normal(T, B, D), Normal(Vocab, D).mul_(half),
                randint(Vocab, [T, B], generator: g), randint(Vocab, [T, B], generator: g));
        }
    }
}
