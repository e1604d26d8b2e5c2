using Elastic.Jobs;
using Elastic.Planning;

namespace Elastic.Tests.Coordination;

/// <summary>MFU: the model's training FLOPs per token, the dense peaks of known cards (their datasheets, in the hardware profiles), and none where the peak is unknown.</summary>
public sealed class ModelFlopsTests
{
    [Theory]
    [InlineData("cuda: NVIDIA H100 80GB HBM3", "bf16", 989.4)]
    [InlineData("cuda: NVIDIA H200", "tf32", 494.7)]
    [InlineData("cuda: NVIDIA H100 80GB HBM3", "fp32", 67.0)]
    [InlineData("cpu", "fp32", null)]
    [InlineData("cuda: NVIDIA A10", "bf16", null)]
    public void Known_cards_have_their_dense_peak_and_others_none(string device, string precision, double? peak) =>
        Assert.Equal(peak, ModelFlops.PeakTflops(device, precision));

    [Fact]
    public void Utilization_is_the_models_flops_per_second_over_the_devices_peak()
    {
        var spec = TestSpecs.Tiny() with { Runtime = new RuntimeSpec { Precision = "bf16" } };
        // 6 x 1000 parameters + 12 x 2 layers x d 32 x context 32 = 30 576 FLOPs per token.
        Assert.Equal(30_576, ModelFlops.PerToken(spec.Model, 1000));

        var mfu = ModelFlops.Utilization(spec, 1000, tokensPerSecond: 1e9, devices: 2, "cuda: NVIDIA H100 80GB HBM3");

        Assert.Equal(1e9 * 30_576 / (2 * 989.4e12), mfu!.Value, 12);
        Assert.Null(ModelFlops.Utilization(spec, 1000, 1e9, 2, "cpu"));
        Assert.Null(ModelFlops.Utilization(spec with { Model = spec.Model with { Moe = new MoeSpec { Experts = 4 } } }, 1000, 1e9, 2, "cuda: NVIDIA H100"));
    }
}
