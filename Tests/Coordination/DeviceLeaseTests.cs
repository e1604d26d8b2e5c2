using Elastic.Grains.Devices;
using Elastic.Units.Devices;

namespace Elastic.Tests.Coordination;

/// <summary>The silo-local device lease: one holder at a time; a new holder waits a bounded time for the last one to let go.</summary>
public sealed class DeviceLeaseTests
{
    [Fact]
    public async Task A_device_held_by_another_is_taken_once_released_within_the_patience()
    {
        using var devices = new SiloDevices(new SiloDeviceOptions { Count = 2 }, "lease-test");
        var first = await devices.AcquireAsync(1, "job-a/g1", TimeSpan.Zero);
        Assert.Same(first, await devices.AcquireAsync(1, "job-a/g1", TimeSpan.Zero)); // again, by the same holder

        var waiting = devices.AcquireAsync(1, "job-b/g1", TimeSpan.FromSeconds(30));
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        devices.Release(1, "job-a/g1");

        Assert.Same(first, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => devices.AcquireAsync(1, "job-a/g2", TimeSpan.FromMilliseconds(50)));
        Assert.Equal("device 1 is held by job-b/g1; job-a/g2 cannot take it (waited 0.1 s for its release)", refused.Message);
    }
}
