using Elastic.Grains.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;

namespace Elastic.Tests.Coordination;

/// <summary>Whether moving to a better layout pays: the time it saves over the devices' expected stay against what it costs, and a least gain against flapping.</summary>
public sealed class MoveWeighingTests
{
    private static LayoutPrediction Running(double stepSeconds) =>
        new(new Layout(2), new MemoryEstimate(0, 0, 0, 0, 0, 0), new StepTimeEstimate(stepSeconds, 0, 0, 0, 0, 0, 0, 0, 0), 1000 / stepSeconds, null);

    private static readonly MoveWeighing Weighing = new(MinGain: 0.1, Prepare: TimeSpan.FromSeconds(2));

    [Fact]
    public void Twice_as_fast_for_ten_minutes_is_worth_a_few_seconds_of_moving()
    {
        // 100 MB at 1 GB/s (0.1 s) plus 2 s preparing, against half of 600 s saved.
        var verdict = Weighing.Weigh(Running(1.0), Running(0.5), 100e6, 1e9, TimeSpan.FromMinutes(10));

        Assert.True(verdict.Move, verdict.Why);
        Assert.Equal("predicted 1,000 -> 2,000 tokens/s (+100%); moving 100.0 MB and preparing cost ~2.1 s, saving ~300 s over the ~10 min the devices are expected to stay", verdict.Why);
    }

    [Fact]
    public void A_gain_below_the_least_is_declined_however_long_the_devices_stay()
    {
        var verdict = Weighing.Weigh(Running(1.0), Running(0.95), 1e6, 1e9, TimeSpan.FromHours(1));

        Assert.False(verdict.Move);
        Assert.EndsWith("not worth it (a move must gain 10% and save more than it costs)", verdict.Why);
    }

    [Fact]
    public void A_move_that_costs_more_than_it_saves_before_the_devices_leave_again_is_declined()
    {
        // 60 GB over 1 GB/s: a minute of moving to save a third of the ~90 s the devices are expected to stay.
        var verdict = Weighing.Weigh(Running(1.0), Running(0.66), 60e9, 1e9, TimeSpan.FromSeconds(90));

        Assert.False(verdict.Move, verdict.Why);
    }

    [Fact]
    public void Devices_that_come_and_go_every_minute_are_not_worth_a_move_that_would_pay_over_ten()
    {
        var start = new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
        // A re-plan every 70 s: joins and leaves in turn.
        var churning = Enumerable.Range(0, 6).Select(i => start + TimeSpan.FromSeconds(70 * i)).ToList();
        var stay = MoveWeighing.ExpectedStay(churning, TimeSpan.FromMinutes(10));
        // 25 % faster, for a move that costs 2 s of preparing and 20 s of moving state.
        var (current, candidate) = (Running(1.0), Running(0.8));

        Assert.Equal(TimeSpan.FromSeconds(70), stay);
        Assert.False(Weighing.Weigh(current, candidate, 20e9, 1e9, stay).Move);
        Assert.True(Weighing.Weigh(current, candidate, 20e9, 1e9, MoveWeighing.ExpectedStay(churning.Take(2).ToList(), TimeSpan.FromMinutes(10))).Move);
        Assert.Equal(TimeSpan.FromMinutes(1), MoveWeighing.ExpectedStay([start, start.AddSeconds(1), start.AddSeconds(2)], TimeSpan.FromMinutes(10)));
    }
}
