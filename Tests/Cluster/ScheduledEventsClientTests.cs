using Elastic.Benchmarks.Chaos;
using Elastic.Silo.Eviction;
using Microsoft.Extensions.Logging.Abstractions;

namespace Elastic.Tests.Cluster;

/// <summary>How a silo asks the instance metadata service who it is and whether it is being evicted (a fake of the service on loopback).</summary>
public sealed class ScheduledEventsClientTests
{
    [Fact]
    public async Task The_vm_name_comes_from_the_metadata_service_and_a_preemption_is_found_only_for_that_vm()
    {
        using var service = new FakeScheduledEvents();
        using var http = new HttpClient();
        var client = new ScheduledEventsClient(http, new EvictionOptions { Endpoint = service.Endpoint }, NullLogger.Instance);

        // In a pod the machine name is the pod's: the name Scheduled Events uses is the metadata service's.
        var vm = await client.VmNameAsync(CancellationToken.None);
        Assert.Equal(service.VmName, vm);
        Assert.Null(await client.PreemptNoticeAsync(vm!, CancellationToken.None));

        service.Preempt("aks-gpuspot-41526374-vmss_5");
        Assert.Null(await client.PreemptNoticeAsync(vm!, CancellationToken.None));
        service.Preempt(vm!);
        var notice = await client.PreemptNoticeAsync(vm!, CancellationToken.None);
        Assert.NotNull(notice?.NotBefore);
    }

    [Fact]
    public async Task A_metadata_service_that_does_not_answer_gives_no_name_and_no_notice_and_throws_nothing()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var client = new ScheduledEventsClient(http, new EvictionOptions { Endpoint = new Uri($"http://127.0.0.1:{ProcessCluster.FreePorts(1)[0]}/metadata/scheduledevents") },
            NullLogger.Instance);

        Assert.Null(await client.VmNameAsync(CancellationToken.None));
        Assert.Null(await client.PreemptNoticeAsync("vm", CancellationToken.None));
    }
}
