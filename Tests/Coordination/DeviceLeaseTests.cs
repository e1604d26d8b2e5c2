using Elastic.Grains.Devices;
using Elastic.Units.Devices;

namespace Elastic.Tests.Coordination;

/// <summary>
/// The silo-local device lease: one holder at a time; a new holder waits a bounded time for the last one to let go, except
/// that a newer generation of the same job takes a lease its older generation failed to give back (found by the chaos suite,
/// where a lost release kept a job from its own device at every later plan).
/// </summary>
public sealed class DeviceLeaseTests
{
    private static DeviceLease Lease(string job, int generation, Action? revoked = null) => new($"{job}/g{generation}", job, generation, revoked);

    [Fact]
    public async Task A_device_held_by_another_is_taken_once_released_within_the_patience()
    {
        using var devices = new SiloDevices(new SiloDeviceOptions { Count = 2 }, "lease-test");
        var first = await devices.AcquireAsync(1, Lease("job-a", 1), TimeSpan.Zero);
        Assert.Same(first, await devices.AcquireAsync(1, Lease("job-a", 1), TimeSpan.Zero)); // again, by the same holder

        var waiting = devices.AcquireAsync(1, Lease("job-b", 1), TimeSpan.FromSeconds(30));
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        devices.Release(1, "job-a/g1");

        Assert.Same(first, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => devices.AcquireAsync(1, Lease("job-a", 2), TimeSpan.FromMilliseconds(50)));
        Assert.Equal("device 1 is held by job-b/g1; job-a/g2 cannot take it (waited 0.1 s for its release)", refused.Message);
    }

    [Fact]
    public async Task A_newer_generation_of_the_same_job_takes_the_device_at_once_and_the_stale_holder_is_told_an_older_one_waits()
    {
        using var devices = new SiloDevices(new SiloDeviceOptions { Count = 1 }, "lease-test");
        var told = 0;
        await devices.AcquireAsync(0, Lease("job-a", 4, () => told++), TimeSpan.Zero);

        await devices.AcquireAsync(0, Lease("job-a", 12), TimeSpan.Zero);
        Assert.Equal(1, told);
        // The stale holder's own release, when it comes, leaves the new lease alone.
        devices.Release(0, "job-a/g4");
        await Assert.ThrowsAsync<InvalidOperationException>(() => devices.AcquireAsync(0, Lease("job-b", 13), TimeSpan.FromMilliseconds(50)));
        await Assert.ThrowsAsync<InvalidOperationException>(() => devices.AcquireAsync(0, Lease("job-a", 11), TimeSpan.FromMilliseconds(50)));
    }
}
