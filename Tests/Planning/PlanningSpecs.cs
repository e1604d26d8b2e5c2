using Elastic.Jobs;
using Elastic.Planning.Hardware;

namespace Elastic.Tests.Planning;

/// <summary>Specs and device profiles whose costs can be computed by hand.</summary>
internal static class PlanningSpecs
{
    /// <summary>A device whose only cost is arithmetic: 1 TFLOP/s matmuls, no memory traffic, no kernel cost, links that cost nothing.</summary>
    public static DeviceProfile ArithmeticOnly(double memoryGiB = 1000) => new()
    {
        Name = "arithmetic",
        MemoryGiB = memoryGiB,
        PeakTflops = new Dictionary<string, double> { ["fp32"] = 1 },
        MemoryBandwidthGBs = double.PositiveInfinity,
        DevicesPerNode = 8,
        IntraNode = new LinkProfile { BusBandwidthGBs = double.PositiveInfinity },
        InterNode = new LinkProfile { BusBandwidthGBs = double.PositiveInfinity },
    };

    /// <summary>GPT-3 175B (Brown et al. 2020) with Megatron-LM's vocabulary and batch, as in examples/published/gpt3-175b.json.</summary>
    public static TrainingSpec Gpt3() => SpecJson.Read(Path.Combine(RepoPaths.Root, "examples", "published", "gpt3-175b.json"));
}
