using Elastic.Benchmarks.Chaos;

namespace Elastic.Tests.Chaos;

/// <summary>The chaos schedule: a pure function of its seed, one silo down at a time, every kind thrown in a long enough window.</summary>
public sealed class FaultScheduleTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(10);

    [Fact]
    public void The_same_seed_gives_the_same_faults_and_another_seed_others()
    {
        var window = TimeSpan.FromMinutes(10);
        Assert.Equal(FaultSchedule.Make(7, window, 4, 3, Settle), FaultSchedule.Make(7, window, 4, 3, Settle));
        Assert.NotEqual(FaultSchedule.Make(7, window, 4, 3, Settle), FaultSchedule.Make(8, window, 4, 3, Settle));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Silo_faults_come_one_at_a_time_each_after_the_last_silo_is_back_and_settled(int seed)
    {
        var faults = FaultSchedule.Make(seed, TimeSpan.FromMinutes(30), silos: 4, jobs: 3, Settle);
        var down = faults.Where(f => f.TakesSiloDown).ToList();

        Assert.True(down.Count >= 20, $"{down.Count} silo faults in 30 minutes");
        foreach (var (before, after) in down.Zip(down.Skip(1)))
            Assert.True(after.At >= before.At + before.Duration + Settle, $"{after} comes before {before} is back and settled");
        Assert.All(faults, f => Assert.InRange(f.At, TimeSpan.Zero, TimeSpan.FromMinutes(30)));
        Assert.All(faults.Where(f => f.Target >= 0), f => Assert.InRange(f.Target, 0, f.Kind is FaultKind.DuplicateSubmission or FaultKind.DamagedCheckpoint ? 2 : 3));
        Assert.All(faults.Where(f => f.Kind == FaultKind.Pause), f => Assert.InRange(f.Duration.TotalSeconds, 5, 60));
    }

    [Fact]
    public void A_few_minutes_see_every_kind_of_fault()
    {
        var kinds = FaultSchedule.Make(11, TimeSpan.FromMinutes(6), 4, 3, Settle).Select(f => f.Kind).ToHashSet();

        Assert.Equal(Enum.GetValues<FaultKind>().ToHashSet(), kinds);
    }
}
