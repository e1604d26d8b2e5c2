namespace Elastic.Benchmarks.Chaos;

/// <summary>
/// A chaos run's faults, a pure function of the seed: silo faults (kills, pauses, drains, eviction notices) one at a time,
/// each after the last one's silo is back and settled, so every job keeps a replica to re-plan from; storage, data-plane,
/// API and submission faults on their own clock, overlapping them freely. Kinds are drawn from shuffled rounds of every
/// kind, so a short run still sees each one.
/// </summary>
public static class FaultSchedule
{
    public static readonly FaultKind[] SiloFaults = [FaultKind.Kill, FaultKind.Pause, FaultKind.Drain, FaultKind.EvictionNotice];

    public static readonly FaultKind[] OtherFaults =
    [
        FaultKind.StorageUnavailable, FaultKind.StorageLatency, FaultKind.StorageResets, FaultKind.StorageCutOff, FaultKind.DataPlaneReset,
        FaultKind.DataPlaneStall, FaultKind.ApiRestart, FaultKind.DuplicateSubmission, FaultKind.DamagedCheckpoint,
    ];

    /// <param name="window">How long faults are thrown.</param>
    /// <param name="silos">Silo processes in the cluster.</param>
    /// <param name="jobs">Job slots (jobs running at once).</param>
    /// <param name="settle">After a silo is back, how long before the next silo fault (the cluster re-forms and jobs grow back).</param>
    public static IReadOnlyList<Fault> Make(int seed, TimeSpan window, int silos, int jobs, TimeSpan settle)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(silos, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(jobs, 1);
        var random = new Random(seed);
        var faults = new List<Fault>();
        var siloKinds = new Rounds(SiloFaults, random);
        for (var at = Seconds(random, 5, 10); at < window;)
        {
            var kind = siloKinds.Next();
            var down = kind == FaultKind.Pause ? Seconds(random, 5, 60) : Seconds(random, 3, 12);
            faults.Add(new Fault(at, kind, random.Next(silos), down));
            // A paused silo is declared dead, exits when it wakes, and is started again: it is down for the pause and the restart.
            at += down + (kind == FaultKind.Pause ? TimeSpan.FromSeconds(5) : TimeSpan.Zero) + settle + Seconds(random, 0, 10);
        }
        var otherKinds = new Rounds(OtherFaults, random);
        for (var at = Seconds(random, 3, 8); at < window; at += Seconds(random, 6, 15))
        {
            var kind = otherKinds.Next();
            var (target, duration) = kind switch
            {
                FaultKind.StorageUnavailable or FaultKind.StorageLatency or FaultKind.StorageResets => (-1, Seconds(random, 2, 10)),
                FaultKind.StorageCutOff => (random.Next(silos), Seconds(random, 5, 20)),
                FaultKind.DataPlaneStall => (random.Next(silos), Seconds(random, 2, 8)),
                FaultKind.DataPlaneReset => (random.Next(silos), TimeSpan.Zero),
                FaultKind.DuplicateSubmission or FaultKind.DamagedCheckpoint => (random.Next(jobs), TimeSpan.Zero),
                _ => (-1, TimeSpan.Zero),
            };
            faults.Add(new Fault(at, kind, target, duration));
        }
        return faults.OrderBy(f => f.At).ThenBy(f => f.Kind).ToList();
    }

    private static TimeSpan Seconds(Random random, double min, double max) => TimeSpan.FromSeconds(Math.Round(min + random.NextDouble() * (max - min), 1));

    /// <summary>Kinds in shuffled rounds: each round holds every kind once.</summary>
    private sealed class Rounds(FaultKind[] kinds, Random random)
    {
        private readonly Queue<FaultKind> _next = new();

        public FaultKind Next()
        {
            if (_next.Count == 0)
            {
                var round = kinds.ToArray();
                random.Shuffle(round);
                foreach (var kind in round) _next.Enqueue(kind);
            }
            return _next.Dequeue();
        }
    }
}
