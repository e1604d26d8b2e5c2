using Elastic.Grains.Jobs;

namespace Elastic.Tests.Cluster;

public sealed class RepeatedFailuresTests
{
    [Fact]
    public void The_same_error_at_the_same_step_on_a_second_silo_follows_the_job()
    {
        var failures = new RepeatedFailures();
        const string oom = "ExternalException: DefaultCPUAllocator: not enough memory";
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(7, oom, "silo-a"));
        Assert.Null(failures.Record(7, "ExternalException: another error", "silo-b"));
        Assert.Null(failures.Record(8, oom, "silo-b"));
        Assert.Equal(["silo-a", "silo-b"], failures.Record(7, oom, "silo-b")!.Order());
    }

    [Fact]
    public void Failures_of_one_step_are_counted_in_a_row_and_another_step_failing_starts_over()
    {
        var failures = new RepeatedFailures();
        Assert.Equal(1, failures.FailedAgain(7));
        Assert.Equal(2, failures.FailedAgain(7));
        Assert.Equal(1, failures.FailedAgain(8));
        Assert.Equal(1, failures.FailedAgain(7));
        Assert.Equal(2, failures.FailedAgain(7));
    }
}
