using System.Globalization;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// What the one-device bits cost at a width that splits the step's micro-batches unevenly: the gradient all-reduce of
/// replicas that each hold their block as pieces of the canonical tree (<see cref="ReplicaBlocks"/>: every piece's runs go
/// to their owner, which completes the tree, then the sum is all-gathered) against the plain all-reduce of one buffer per
/// rank at the same width, measured in the same run, one process per rank. A power of two dividing the micro-batches gives
/// one piece per replica: that row checks that the two are the same collective.
/// </summary>
internal static class UnevenAllReduce
{
    private const int MicroBatches = 8;

    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int size = 16 << 20;
        var rows = new List<string>();
        var ratios = new List<double>();
        foreach (var world in new[] { 3, 4, 5, 6, 7 })
        {
            var blocks = new ReplicaBlocks(MicroBatches, world);
            var plain = await AllReduceBandwidth.Measure("all-reduce", world, size);
            var pieces = await AllReduceBandwidth.Measure(PiecesKind, world, size);
            var counts = Enumerable.Range(0, world).Select(r => blocks.PiecesOf(r).Count).ToList();
            // Bytes the busiest rank sends: each piece's runs to every other owner, then its own part to every other rank.
            var bytes = (counts.Max() + 1) / 2.0;
            if (counts.Max() > 1) ratios.Add(pieces / plain);
            rows.Add(string.Create(inv,
                $"| {world} | {string.Join(", ", Enumerable.Range(0, world).Select(r => blocks.BlockOf(r).Count))} | {string.Join(", ", counts)} | {plain * 1000:F1} | {pieces * 1000:F1} | {pieces / plain:F2} | {bytes:F1} |"));
            Console.WriteLine(rows[^1]);
        }
        var table = string.Join("\n", [
            "| replicas | micro-batches each | pieces each | plain all-reduce (ms) | pieces all-reduce (ms) | time ratio | bytes sent by the busiest rank, ratio |",
            "|---:|---|---|---:|---:|---:|---:|",
            .. rows,
            "",
            string.Create(inv, $"**Median time of the pieces all-reduce over the plain one at uneven widths: {Statistics.Median(ratios):F2}x.** {MicroBatches} micro-batches per step, a {size >> 20} MiB fp32 gradient, medians over {AllReduceBandwidth.Iterations} iterations, the slowest rank's. The plain all-reduce sums one buffer per rank in the tree over ranks, as a width that splits the micro-batches evenly does; at an uneven width it would not give the one-device bits. The bytes column is what the busiest rank sends relative to the plain all-reduce ((pieces + 1) / 2: a reduce-scatter per piece, one all-gather), the upper bound of the time ratio on a link-bound network. On this machine 5 to 7 processes share 2 cores, so the ranks' copies and sums compete for them as much as the bytes do."),
        ]);
        BenchmarkRecord.Write("uneven-allreduce", "The all-reduce at uneven data-parallel widths against the plain one",
            "dotnet run -c Release --project Benchmarks -- uneven-allreduce", table);
        return 0;
    }

    /// <summary>The worker's kind for the pieces all-reduce.</summary>
    public const string PiecesKind = "all-reduce-pieces";

    /// <summary>This rank's buffers at <paramref name="world"/> replicas: one per piece of its block, the first <paramref name="data"/>.</summary>
    public static (ReplicaBlocks Blocks, IReadOnlyList<Memory<byte>> Pieces) PiecesOf(int world, int rank, byte[] data)
    {
        var blocks = new ReplicaBlocks(MicroBatches, world);
        return (blocks, [.. blocks.PiecesOf(rank).Select((_, k) => k == 0 ? data.AsMemory() : data.ToArray().AsMemory())]);
    }
}
