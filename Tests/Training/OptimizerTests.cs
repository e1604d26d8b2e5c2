using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Optim;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Elastic.Training.Optim.AdamW;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

public sealed class OptimizerTests
{
    [Fact]
    public async Task AdamW_matches_torch_optim_AdamW_on_decayed_parameters()
    {
        var maxDiff = await TestSpecs.OnDevice(() =>
        {
            var spec = new OptimizerSpec { Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-8, WeightDecay = 0.1 };
            using var init = randn([8, 16], generator: new Generator(1, CPU));
            var ours = new Parameter(init.clone());
            var theirs = new Parameter(init.clone());
            using var adamW = new AdamW([("w", ours, true)], spec);
            var reference = optim.AdamW([theirs], lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1);
            var gradients = new Generator(2, CPU);
            for (var step = 1; step <= 5; step++)
            {
                var lr = 1e-2 / step;
                var g = randn([8, 16], generator: gradients);
                ours.grad = g.clone();
                theirs.grad = g.clone();
                adamW.Step(lr);
                foreach (var group in reference.ParamGroups) group.LearningRate = lr;
                reference.step();
            }
            return (ours - theirs).abs().max().item<float>();
        });
        Assert.True(maxDiff <= 1e-6f, $"max difference from torch.optim.AdamW: {maxDiff}");
    }

    [Fact]
    public async Task AdamW_over_one_flat_buffer_gives_every_parameter_the_bits_of_a_step_per_parameter()
    {
        // Odd sizes put each parameter's last values where a per-parameter kernel runs its scalar tail and the flat one its
        // vector body: the bits must not depend on that, nor on which neighbours decay.
        var (flat, perParameter) = await TestSpecs.OnDevice(() =>
        {
            var spec = new OptimizerSpec { Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-8, WeightDecay = 0.1 };
            var generator = new Generator(4, CPU);
            long[][] shapes = [[37, 11], [13], [1031, 1019], [3], [64, 17], [101]]; // over 2^20 values: several CPU chunks
            var inits = shapes.Select(s => randn(s, generator: generator)).ToList();
            var grads = Enumerable.Range(0, 4).Select(_ => shapes.Select(s => randn(s, generator: generator)).ToList()).ToList();
            var ours = inits.Select((t, i) => ($"p{i}", new Parameter(t.clone()), t.dim() >= 2)).ToList();
            using var adamW = new AdamW(ours, spec);
            var reference = inits.Select(t => t.clone()).ToList();
            var m = inits.Select(t => zeros_like(t)).ToList();
            var v = inits.Select(t => zeros_like(t)).ToList();
            using var one = 1.0.ToScalar();
            using var b1 = 0.9.ToScalar();
            using var b1c = (1 - 0.9).ToScalar();
            using var b2 = 0.95.ToScalar();
            using var b2c = (1 - 0.95).ToScalar();
            using var eps = 1e-8.ToScalar();
            for (var step = 1; step <= grads.Count; step++)
            {
                var lr = 1e-2 / step;
                for (var i = 0; i < ours.Count; i++) ours[i].Item2.grad = grads[step - 1][i].clone();
                adamW.Step(lr);
                using var decay = (1 - lr * 0.1).ToScalar();
                using var bc2 = Math.Sqrt(1 - Math.Pow(0.95, step)).ToScalar();
                using var size = (-lr / (1 - Math.Pow(0.9, step))).ToScalar();
                for (var i = 0; i < reference.Count; i++)
                {
                    var g = grads[step - 1][i];
                    if (reference[i].dim() >= 2) reference[i].mul_(decay);
                    m[i].mul_(b1).add_(g, alpha: b1c);
                    v[i].mul_(b2).addcmul_(g, g, value: b2c);
                    reference[i].addcdiv_(m[i], v[i].sqrt().div_(bc2).add_(eps, alpha: one), value: size);
                }
            }
            return (ParameterDigest.Compute(ours.Select(p => (p.Item1, (Tensor)p.Item2))), ParameterDigest.Compute(reference.Select((t, i) => ($"p{i}", t))));
        });
        Assert.Equal(perParameter, flat);
    }

    [Fact]
    public void AdamW_decays_matrices_and_embeddings_but_not_biases_or_norm_gains()
    {
        using var model = new Elastic.Training.Model.DecoderModel(TestSpecs.Tiny().Model, seed: 1);
        using var adamW = new AdamW(model.ParametersByName(), new OptimizerSpec());
        var decayed = adamW.DecayedParameters.ToHashSet();
        // Split parameters are held as shards (name#s): each shard decays as its parameter does.
        Assert.Contains("wte.weight#0", decayed);
        Assert.Contains("wpe.weight", decayed);
        Assert.Contains("h.0.attn.c_attn.weight#3", decayed);
        Assert.Contains("h.1.mlp.c_proj.weight#1", decayed);
        Assert.DoesNotContain("h.0.attn.c_attn.bias#0", decayed);
        Assert.DoesNotContain("h.0.attn.c_proj.bias", decayed);
        Assert.DoesNotContain("h.0.ln_1.weight", decayed);
        Assert.DoesNotContain("ln_f.weight", decayed);
    }

    [Fact]
    public void Learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_minimum()
    {
        var schedule = new LearningRateSchedule(new OptimizerSpec { Lr = 1e-3, MinLr = 1e-4, WarmupSteps = 10 }, totalSteps: 110);
        Assert.Equal(1e-4, schedule.At(1), 12);
        Assert.Equal(5e-4, schedule.At(5), 12);
        Assert.Equal(1e-3, schedule.At(10), 12);
        Assert.Equal(5.5e-4, schedule.At(60), 12);
        Assert.Equal(1e-4, schedule.At(110), 12);
        var decay = Enumerable.Range(10, 101).Select(s => schedule.At(s)).ToArray();
        Assert.True(decay.Zip(decay.Skip(1)).All(p => p.Second <= p.First), "the rate must not rise after warmup");
    }
}
