using Elastic.Training.Engine;

namespace Elastic.Tests.Training;

/// <summary>The process-wide TF32 switch under device threads of both modes: nobody launches work under the other mode's setting.</summary>
public sealed class Tf32GateTests
{
    [Fact]
    public async Task Threads_of_both_modes_never_hold_the_gate_together_and_each_sees_its_own_setting()
    {
        var switchOn = false;
        var switches = 0;
        var gate = new Tf32Gate(on =>
        {
            switchOn = on;
            Interlocked.Increment(ref switches);
        });
        var inside = new int[2];
        var violations = 0;
        var threads = Enumerable.Range(0, 6).Select(t => Task.Factory.StartNew(() =>
        {
            var tf32 = t % 2 == 1;
            for (var i = 0; i < 200; i++)
            {
                using (gate.Enter(tf32))
                {
                    Interlocked.Increment(ref inside[tf32 ? 1 : 0]);
                    if (switchOn != tf32 || Volatile.Read(ref inside[tf32 ? 0 : 1]) != 0) Interlocked.Increment(ref violations);
                    Thread.SpinWait(200);
                    Interlocked.Decrement(ref inside[tf32 ? 1 : 0]);
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        var all = Task.WhenAll(threads);
        Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60))));
        Assert.Equal(0, violations);
        Assert.True(switches > 1, "the two modes never alternated");
    }

    [Fact]
    public async Task Threads_of_one_mode_share_the_gate_and_the_switch_is_set_once()
    {
        var switches = new List<bool>();
        var gate = new Tf32Gate(switches.Add);
        using var both = new Barrier(2);
        var holders = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
        {
            using (gate.Enter(tf32: true)) Assert.True(both.SignalAndWait(TimeSpan.FromSeconds(10)), "the second holder of the same mode was kept out");
        }, TaskCreationOptions.LongRunning)).ToArray();
        await Task.WhenAll(holders);
        Assert.Equal([true], switches);
        using (gate.Enter(tf32: false)) { }
        Assert.Equal([true, false], switches);
    }
}
