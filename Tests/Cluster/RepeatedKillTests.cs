using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Xunit.Abstractions;

namespace Elastic.Tests.Cluster;

/// <summary>
/// Five silos killed one after another under a running job (a fresh one joining before each kill): every kill is one
/// failure re-plan that loses no committed step and says what failed, and the job still ends with the fixed-layout bits.
/// The pause of each re-plan is printed (a figure to watch, not asserted: timing belongs to benchmarks).
/// </summary>
public sealed class RepeatedKillTests(ITestOutputHelper output)
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(steps: 1000, global: 16, micro: 2) with
    {
        Devices = new DeviceSpec { Min = 1, Max = 4 },
    };

    [Fact]
    public async Task Five_kills_in_a_row_each_replan_once_lose_nothing_and_the_job_ends_with_the_fixed_layout_bits()
    {
        var reference = TestSpecs.ReferenceDigest(Spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(Spec);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var status = await cluster.Until(jobId, s => s.CommittedStep >= 5, timeout.Token);
        for (var kill = 1; kill <= 5; kill++)
        {
            await cluster.AddSiloAsync();
            var victim = await cluster.SiloOfReplicaButNotCoordinator(jobId);
            var failures = status.Failures;
            await cluster.Cluster.KillSiloAsync(victim);
            status = await cluster.Until(jobId, s => s.Failures > failures && s.CommittedStep >= status.CommittedStep + 5, timeout.Token);
            Assert.DoesNotContain(status.Plan!.Devices, d => d.Silo.Equals(victim.SiloAddress));
        }

        // The rest of 1000 steps: a job long enough for five kills, on a shared 2-core machine.
        var ended = await cluster.Finish(jobId, TimeSpan.FromMinutes(5));
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        var failed = events.Where(e => e.Kind == "replanned" && e.Message.StartsWith("failure", StringComparison.Ordinal)).ToList();
        foreach (var e in failed) output.WriteLine(e.Message[(e.Message.IndexOf("paused", StringComparison.Ordinal))..]);
        Assert.True(failed.Count == 5, log);
        Assert.All(failed, e => Assert.Contains("0 committed step(s) lost", e.Message));
        Assert.DoesNotContain("codec", log, StringComparison.OrdinalIgnoreCase);
        Assert.True(await reference == ended.FinalParameterDigest, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, Spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }
}
