using Elastic.Benchmarks.Chaos;
using Xunit.Abstractions;

namespace Elastic.Tests.Chaos;

/// <summary>
/// The short seeded chaos run: four silo processes, Azurite behind fault proxies and the API as its own process, while a
/// seeded schedule throws kills, pauses, drains, evictions, storage and data-plane faults, API restarts, duplicate
/// submissions and damaged checkpoints at jobs of three priorities. Every job's history must pass the checker: nothing
/// committed is lost or rewritten, every loss and every final digest is the fault-free run's, every job completes. It runs
/// alone: its six processes are the load the schedule was made for, and another class's cluster beside them on two cores
/// would stretch every drain past its deadline.
/// </summary>
[Collection(nameof(ChaosRunTests))]
public sealed class ChaosRunTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_seeded_chaos_run_loses_no_committed_step_and_ends_every_job_with_the_fault_free_bits()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-chaos-test-").FullName;
        var options = new ChaosOptions(TimeSpan.FromSeconds(100), Seed: 5, folder, RepoPaths.Root, line => output.WriteLine(line))
        {
            Steps = 60,
            FinishLimit = TimeSpan.FromMinutes(6),
        };
        var result = await ChaosRun.RunAsync(options);
        output.WriteLine(result.Figures.ToString());

        Assert.True(result.Violations.Count == 0, $"logs in {folder}:\n{string.Join("\n", result.Violations)}");
        var kinds = result.Applied.Select(a => a.Fault.Kind).Distinct().ToList();
        Assert.True(kinds.Count >= 8, $"only {string.Join(", ", kinds)} were thrown");
        Assert.True(result.Figures.Jobs >= 3 && result.Figures.StepsCommitted >= 3 * options.Steps,
            $"{result.Figures.Jobs} jobs, {result.Figures.StepsCommitted} steps: too little ran to check");
        Assert.Equal(0, result.Figures.StepsLost);
        Directory.Delete(folder, recursive: true);
    }
}

[CollectionDefinition(nameof(ChaosRunTests), DisableParallelization = true)]
public sealed class ChaosRunCollection;
