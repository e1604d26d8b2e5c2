using Elastic.Grains.Jobs;

namespace Elastic.Tests.Cluster;

public sealed class RepeatedFailuresTests
{
    [Fact]
    public void The_same_error_at_the_same_step_on_a_second_silo_follows_the_job()
    {
        var failures = new RepeatedFailures(limit: 5);
        const string oom = "ExternalException: DefaultCPUAllocator: not enough memory";
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(7, "ExternalException: another error", "silo-b"));
        Assert.Null(failures.Record(8, oom, "silo-b"));
        var (silos, times) = failures.Record(7, oom, "silo-b")!.Value;
        Assert.Equal(["silo-a", "silo-b"], silos.Order());
        Assert.Equal(3, times);
    }

    [Fact]
    public void The_same_error_at_the_same_step_as_often_as_the_limit_on_the_only_silo_follows_the_job()
    {
        var failures = new RepeatedFailures(limit: 3);
        const string oom = "ExternalException: DefaultCPUAllocator: not enough memory";
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(7, "ExternalException: another error", "silo-a"));
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(8, oom, "silo-a"));
        var (silos, times) = failures.Record(7, oom, "silo-a")!.Value;
        Assert.Equal(["silo-a"], silos);
        Assert.Equal(3, times);
    }

    [Fact]
    public void Failures_of_one_step_are_counted_in_a_row_and_another_step_failing_starts_over()
    {
        var failures = new RepeatedFailures(limit: 3);
        Assert.Null(failures.FailedTooOftenInARow(7));
        Assert.Null(failures.FailedTooOftenInARow(7));
        Assert.Null(failures.FailedTooOftenInARow(8));
        Assert.Null(failures.FailedTooOftenInARow(7));
        Assert.Null(failures.FailedTooOftenInARow(7));
        Assert.Equal(3, failures.FailedTooOftenInARow(7));
        Assert.Equal(4, failures.FailedTooOftenInARow(7));
    }
}
