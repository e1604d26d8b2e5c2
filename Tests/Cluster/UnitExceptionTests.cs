using Elastic.GrainInterfaces;
using Elastic.Training.Collectives;
using Elastic.Units.Replicas;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Elastic.Tests.Cluster;

/// <summary>Engine exceptions leave a training unit as something the wire carries, with their type and message.</summary>
public sealed class UnitExceptionTests
{
    [Fact]
    public void A_collective_failure_crosses_the_wire_with_its_type_and_message()
    {
        var collective = new CollectiveException("all-reduce of group job/g2/dp: peer 3 closed the connection");
        Assert.False(UnitExceptionFilter.Travels(collective));
        Assert.True(UnitExceptionFilter.Travels(new InvalidOperationException("not prepared")));
        Assert.True(UnitExceptionFilter.Travels(new CheckpointUnreadableException("chunk r0 is damaged")));

        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var copy = serializer.Deserialize<Exception>(serializer.SerializeToArray<Exception>(UnitFailedException.From(collective)));
        Assert.IsType<UnitFailedException>(copy);
        Assert.Equal("CollectiveException: all-reduce of group job/g2/dp: peer 3 closed the connection", copy.Message);
    }

    [Fact]
    public void A_libtorch_error_keeps_its_first_line_without_the_native_frames()
    {
        var native = new System.Runtime.InteropServices.ExternalException("Expected false to be true\nException raised from toFloat at c10/core/Scalar.h:140\nframe #0: ...");
        Assert.False(UnitExceptionFilter.Travels(native));
        Assert.Equal("ExternalException: Expected false to be true", UnitFailedException.From(native).Message);
    }

    [Fact]
    public void The_cause_among_units_calls_is_the_first_real_fault_and_none_when_calls_were_only_cancelled()
    {
        var timedOut = Task.FromException(UnitFailedException.From(new CollectiveException("rank 1 did not answer within 10 s")));
        var real = Task.FromException(new InvalidOperationException("unit 1 is not prepared"));
        var cancelled = Task.FromCanceled(new CancellationToken(canceled: true));

        Assert.Equal("unit 1 is not prepared", UnitFailedException.Cause([timedOut, real, Task.CompletedTask])!.Message);
        Assert.StartsWith(UnitFailedException.CollectivePrefix, UnitFailedException.Cause([timedOut, cancelled])!.Message);
        // Found by the chaos soak: a link to the units' silo terminated and every call came back cancelled.
        Assert.Null(UnitFailedException.Cause([cancelled, Task.CompletedTask]));
    }
}
