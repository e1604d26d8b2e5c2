using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;
using Elastic.Planning.Hardware;

namespace Elastic.Tests.Planning;

/// <summary>What a silo measures of its devices replaces the profile's assumptions, and the step-time model uses it.</summary>
public sealed class CalibrationTests
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 8 } };

    private static DeviceMeasurement Measured(double fp32 = 0.1, double efficiency = 1, int cores = 0) => new()
    {
        MatmulTflops = new Dictionary<string, double> { ["fp32"] = fp32, ["bf16"] = 2 * fp32 },
        MemoryBandwidthGBs = 40, KernelOverheadMicroseconds = 2, EngineEfficiency = efficiency, SharedCores = cores,
        IntraNode = new LinkProfile { BusBandwidthGBs = 1.5, LatencyMicroseconds = 20 },
        InterNode = new LinkProfile { BusBandwidthGBs = 0.8, LatencyMicroseconds = 70 },
    };

    [Fact]
    public void A_measurement_replaces_the_assumed_figures_and_keeps_the_published_peak_that_MFU_divides_by()
    {
        var h100 = HardwareProfiles.Named("H100-80GB")!;
        var calibrated = Measured(fp32: 40).Apply(h100);

        Assert.True(calibrated.Calibrated);
        Assert.Equal(40e12, calibrated.MatmulFlops("fp32"));
        Assert.Equal(80e12, calibrated.MatmulFlops("bf16"));
        // tf32 was not measured: the published peak times the efficiency, as before.
        Assert.Equal(h100.MatmulFlops("tf32"), calibrated.MatmulFlops("tf32"));
        Assert.Equal(h100.PeakTflops, calibrated.PeakTflops);
        Assert.Equal((40.0, 2.0, 1.5, 0.8), (calibrated.MemoryBandwidthGBs, calibrated.KernelOverheadMicroseconds, calibrated.IntraNode.BusBandwidthGBs, calibrated.InterNode.BusBandwidthGBs));
    }

    [Fact]
    public void What_a_silo_advertises_reads_back_and_anything_unreadable_leaves_the_profile_as_it_is()
    {
        var measured = Measured(efficiency: 0.8, cores: 2);
        Assert.Equal(measured.ToJson(), DeviceMeasurement.FromJson(measured.ToJson())!.ToJson());

        Assert.Null(DeviceMeasurement.FromJson(""));
        Assert.Null(DeviceMeasurement.FromJson("{not json"));
        Assert.Null(DeviceMeasurement.FromJson("""{"matmulTflops":{}}"""));
        Assert.Null(DeviceMeasurement.FromJson("""{"matmulTflops":{"fp32":-1}}"""));
    }

    [Fact]
    public void A_group_of_alike_silos_is_planned_with_its_slowest_measurement()
    {
        SiloOffer Offer(int port, DeviceMeasurement m) =>
            new(SiloAddress.New(System.Net.IPAddress.Loopback, port, 1), 2, "cpu", 4096, m.ToJson());
        var shape = InventoryShape.Of([Offer(1, Measured(0.2)), Offer(2, Measured(0.1)), new SiloOffer(SiloAddress.New(System.Net.IPAddress.Loopback, 3, 1), 2, "cpu", 4096)]);

        var group = Assert.Single(shape.Groups);
        Assert.Equal(3, group.Count);
        Assert.True(group.Profile.Calibrated);
        Assert.Equal(0.1e12, group.Profile.MatmulFlops("fp32"), 1e-3);
    }

    [Fact]
    public void The_engine_efficiency_slows_arithmetic_not_kernel_launches_and_devices_sharing_a_nodes_cores_slow_both()
    {
        var cpu = HardwareProfiles.Named("cpu")!;
        double Compute(DeviceMeasurement m, Layout layout) =>
            StepTimeModel.Of(Spec, new StageCosts(Spec, layout.Tp, layout.Pp, layout.VirtualStages, 0), layout, m.Apply(cpu), 4).Compute;

        var alone = Compute(Measured(), new Layout(2));
        // Kernel launches at 2 us each: what doubling their cost adds.
        var launches = Compute(Measured() with { KernelOverheadMicroseconds = 4 }, new Layout(2)) - alone;
        Assert.True(launches > 0 && launches < alone);
        Assert.Equal(alone + (alone - launches), Compute(Measured(efficiency: 0.5), new Layout(2)), 1e-12);
        // Two devices on two cores run alone; four share them: each replica's half of the work takes as long as the whole on two.
        Assert.Equal(alone, Compute(Measured(cores: 2), new Layout(2)), 1e-12);
        Assert.Equal(alone, Compute(Measured(cores: 2), new Layout(4)), 1e-12);
        Assert.Equal(alone / 2, Compute(Measured(cores: 4), new Layout(4)), 1e-12);
    }

    [Theory]
    [InlineData(0.4, 0.5, null, 0.4)] // nothing measured yet: the model's figure
    [InlineData(0.4, 0.5, 1.0, 0.8)] // the job runs at twice the model's time: so will its next layout
    [InlineData(0.4, 0.5, 0.25, 0.2)]
    [InlineData(0.4, 0.5, 50.0, 2.0)] // a step stalled tenfold beyond the model says more about the stall: at most 5x
    public void A_running_jobs_measured_step_refines_the_prediction_for_its_next_layout(double model, double modelNow, double? measuredNow, double refined) =>
        Assert.Equal(refined, StepTimeModel.Refined(model, modelNow, measuredNow), 1e-12);
}
