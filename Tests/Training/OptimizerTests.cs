using Elastic.Training.Optim;
using Elastic.Jobs;
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
            using var adamW = new AdamW([("w", ours)], spec);
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
    public void AdamW_decays_matrices_and_embeddings_but_not_biases_or_norm_gains()
    {
        using var model = new Elastic.Training.Model.GptModel(TestSpecs.Tiny().Model, seed: 1);
        using var adamW = new AdamW(model.ParametersByName(), new OptimizerSpec());
        var decayed = adamW.DecayedParameters.ToHashSet();
        Assert.Contains("wte.weight", decayed);
        Assert.Contains("h.0.attn.c_attn.weight", decayed);
        Assert.Contains("h.1.mlp.c_proj.weight", decayed);
        Assert.DoesNotContain("h.0.attn.c_attn.bias", decayed);
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
