using System.Globalization;

namespace Elastic.Benchmarks;

/// <summary>
/// The all-to-all that dispatches MoE tokens to their experts and back, between 2 and 4 ranks in separate processes, against
/// raw loopback TCP measured in the same run. Each rank sends a 1/n slice of its buffer to every rank; bandwidth follows
/// NCCL's all-to-all bus bandwidth: size / time x (n - 1) / n, the bytes each rank moves to its peers per second.
/// </summary>
internal static class AllToAllBandwidth
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var rows = new List<string>();
        var ratios = new List<double>();
        foreach (var size in new[] { 16 << 20, 64 << 20 })
        {
            var raw = await WorkerProcesses.RawTcp(size);
            foreach (var world in new[] { 2, 4 })
            {
                var seconds = await AllReduceBandwidth.Measure("all-to-all", world, size);
                var bus = size / seconds * (world - 1) / world;
                ratios.Add(bus / raw);
                rows.Add(string.Create(inv, $"| {size >> 20} MiB | {world} | {seconds * 1000:F1} | {bus / 1e6:N0} | {raw / 1e6:N0} | {bus / raw:F2} |"));
                Console.WriteLine(rows[^1]);
            }
        }
        var table = string.Join("\n", new[]
        {
            "| buffer per rank | ranks | median all-to-all (ms) | bus bandwidth (MB/s) | raw loopback TCP (MB/s) | ratio |",
            "|---:|---:|---:|---:|---:|---:|",
        }.Concat(rows).Append("").Append(string.Create(inv,
            $"**Median ratio of all-to-all bus bandwidth to raw loopback TCP: {Statistics.Median(ratios):F2}.** One process per rank, `Communicator.AllToAll` (one frame to and from every peer over direct links, all in flight at once), as MoE layers dispatch tokens and combine them; raw TCP is one process streaming the same bytes to another through a single connection. Medians over {AllReduceBandwidth.Iterations} iterations. On 2 shared cores every rank's sends and receives compete with the others' for the cores the raw baseline has to itself: 4 ranks are 4 processes on 2 cores, each moving 3/4 of its buffer out and 3/4 in. The MoE layers move far less than these buffers per micro-batch (tokens x d x 4 bytes each way per layer), where per-message latency matters more than bandwidth.")));
        BenchmarkRecord.Write("all-to-all", "Data-plane all-to-all (MoE dispatch) against raw loopback TCP",
            "dotnet run -c Release --project Benchmarks -- all-to-all", table);
        return 0;
    }
}
