using Elastic.Grains.Capacity;
using Elastic.Planning.Hardware;

namespace Elastic.Tests.Cluster;

/// <summary>A silo measures its devices and links when it starts and advertises them; the planner's view of the cluster uses them.</summary>
public sealed class SiloCalibrationTests
{
    [Fact]
    public async Task A_silo_advertises_what_it_measured_and_the_planner_plans_its_devices_with_it()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 2, calibrate: true);

        var silo = Assert.Single(await cluster.Client.GetInventoryAsync());
        var measured = DeviceMeasurement.FromJson(silo.Calibration);
        Assert.True(measured is not null, $"unreadable calibration '{silo.Calibration}'");
        Assert.All(new[] { measured.MatmulTflops["fp32"], measured.MemoryBandwidthGBs, measured.KernelOverheadMicroseconds, measured.IntraNode!.BusBandwidthGBs, measured.InterNode!.BusBandwidthGBs },
            figure => Assert.True(double.IsFinite(figure) && figure > 0, measured.ToString()));
        Assert.InRange(measured.EngineEfficiency, 0.01, 1);
        Assert.Equal(Environment.ProcessorCount, measured.SharedCores);

        var profile = Assert.Single(InventoryShape.Of([silo]).Groups).Profile;
        Assert.True(profile.Calibrated);
        Assert.Equal(measured.MatmulTflops["fp32"] * 1e12, profile.MatmulFlops("fp32"));
    }
}
