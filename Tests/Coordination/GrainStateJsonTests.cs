using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Grains.Jobs;
using Elastic.Grains.Jobs.Replanning;
using Elastic.Jobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Tests.Coordination;

/// <summary>
/// Grain state as Azure Table grain storage keeps it: JSON that names each value's type, read back only for types the
/// serializer allows. Found by the chaos suite: a capacity record holding a claim made from a collection expression was
/// written but could not be read, so the capacity grain's next activation (after its silo died) failed every job.
/// </summary>
public sealed class GrainStateJsonTests
{
    [Fact]
    public void A_capacity_record_with_claims_made_from_collection_expressions_reads_back()
    {
        var serializer = StorageSerializer();
        var record = new CapacityRecord();
        record.Claims["job-a"] = new Claim(new("team-a", 2, DateTimeOffset.UnixEpoch), [4], DateTimeOffset.UnixEpoch);
        record.Claims["job-b"] = new Claim(new("team-b", 0, DateTimeOffset.UnixEpoch), [1, 2, 4], DateTimeOffset.UnixEpoch);

        var read = serializer.Deserialize<CapacityRecord>(serializer.Serialize(record));

        Assert.Equal([4], read!.Claims["job-a"].Widths);
        Assert.Equal([1, 2, 4], read.Claims["job-b"].Widths);
    }

    [Fact]
    public async Task A_job_record_after_a_replan_reads_back_with_its_plan_events_and_steps()
    {
        var spec = TestSpecs.Tiny(steps: 20, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };
        var job = new FakeReplanJob(spec, ["a", "b"], replicas: 2, committed: 5);
        job.Gone.Add("b");
        Assert.True(await new Replanner(job, FakeReplanJob.Options, TimeProvider.System)
            .Replan(new ReplanChange(ReplanCause.Leave, "silo b is draining") { Leaving = [job.Device("b")] }));
        var serializer = StorageSerializer();

        var read = serializer.Deserialize<JobRecord>(serializer.Serialize(job.Record))!;

        Assert.Equal(job.Record.Plan!.ToString(), read.Plan!.ToString());
        Assert.Equal(job.Record.Plan.Devices, read.Plan.Devices);
        Assert.Equal(job.Record.Events.Select(e => (e.Kind, e.Message, e.Replan)), read.Events.Select(e => (e.Kind, e.Message, e.Replan)));
        Assert.Equal(StepLog.Count(job.Record), StepLog.Count(read));

    }

    /// <summary>Orleans' JSON grain-storage serializer as a host wires it (an unstarted client host supplies what it needs).</summary>
    private static JsonGrainStorageSerializer StorageSerializer()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client => client.UseLocalhostClustering().Services.AddSerializer(s => s.AddElasticJobTypes()));
        builder.Services.AddSingleton<IPostConfigureOptions<OrleansJsonSerializerOptions>, ConfigureOrleansJsonSerializerOptions>();
        builder.Services.AddSingleton<OrleansJsonSerializer>();
        builder.Services.AddSingleton<JsonGrainStorageSerializer>();
        return builder.Build().Services.GetRequiredService<JsonGrainStorageSerializer>();
    }
}
