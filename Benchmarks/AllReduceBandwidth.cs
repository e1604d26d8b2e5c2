using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// All-reduce bus bandwidth of the data plane between 2 and 4 ranks in separate processes, against raw
/// loopback TCP (one process streaming to another) measured in the same run. Bus bandwidth follows NCCL's
/// definition: size / time x 2(n - 1) / n, the bytes each rank must move for a bandwidth-optimal all-reduce.
/// </summary>
internal static class AllReduceBandwidth
{
    public const int Iterations = 12;

    public static async Task<int> Run(string[] args)
    {
        var sizes = new[] { 16 << 20, 64 << 20 };
        var rows = new List<string>();
        var (ratios, tlsRatios) = (new List<double>(), new List<double>());
        foreach (var size in sizes)
        {
            var raw = await WorkerProcesses.RawTcp(size);
            foreach (var world in new[] { 2, 4 })
            {
                var seconds = await Measure("all-reduce", world, size);
                var busBandwidth = size / seconds * 2 * (world - 1) / world;
                var ratio = busBandwidth / raw;
                ratios.Add(ratio);
                // The same over TLS links (AES-GCM in both directions), against the plain links just measured.
                var tlsSeconds = await Measure("all-reduce-tls", world, size);
                tlsRatios.Add(seconds / tlsSeconds);
                rows.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| {size >> 20} MiB | {world} | {seconds * 1000:F1} | {busBandwidth / 1e6:N0} | {raw / 1e6:N0} | {ratio:F2} | {tlsSeconds * 1000:F1} | {seconds / tlsSeconds:F2} |"));
                Console.WriteLine(rows[^1]);
            }
        }
        var table = string.Join("\n", new[]
        {
            "| size | ranks | median all-reduce (ms) | bus bandwidth (MB/s) | raw loopback TCP (MB/s) | ratio | over TLS (ms) | TLS / plain bandwidth |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        }.Concat(rows).Append("").Append(string.Create(CultureInfo.InvariantCulture,
            $"**Median ratio of all-reduce bus bandwidth to raw loopback TCP: {Statistics.Median(ratios):F2}** (goal >= 0.5). One process per rank, fp32 sum in canonical tree order (reduce-scatter, then all-gather over direct links); raw TCP is one process streaming the same bytes to another through a single connection. Medians over {Iterations} iterations. **Over TLS 1.3 links (`Elastic:DataPlane:Tls`) the all-reduce keeps {Statistics.Median(tlsRatios):F2} of its plain bandwidth** (median over the rows).")).Append("").Append(
            "Reading the ratio on a small machine: every byte that crosses between processes costs a kernel copy on send and one on receive, and all ranks share the same cores that the raw baseline uses for a single stream. With 2 cores that bounds the ratio near 0.5 for 2 ranks (each rank both sends and receives its half twice) and near 0.25 for 4 ranks (4 processes on 2 cores, each moving 3/4 of the buffer twice); with a core per rank the bound is 1. TLS adds an AES-GCM pass over every byte on each end, on the same two cores as the reduction: on a machine with a core (and AES-NI) per rank to spare, it costs far less of the link."));
        BenchmarkRecord.Write("allreduce", "Data-plane all-reduce against raw loopback TCP",
            "dotnet run -c Release --project Benchmarks -- allreduce", table);
        return 0;
    }

    /// <summary>
    /// Runs one rank: joins the group on its own data plane and times the collective (args[3]: <c>all-reduce</c> of the whole
    /// buffer, <c>all-reduce-tls</c> the same over TLS links, <c>all-reduce-pieces</c> of a replica's block pieces at an uneven
    /// width (<see cref="UnevenAllReduce"/>), or <c>all-to-all</c> of a 1/n slice to every rank); prints the median seconds.
    /// </summary>
    public static async Task<int> Worker(string[] args)
    {
        var (rank, size) = (int.Parse(args[0], CultureInfo.InvariantCulture), int.Parse(args[1], CultureInfo.InvariantCulture));
        var kind = args.Length > 3 ? args[3] : "all-reduce";
        var allToAll = kind == "all-to-all";
        var tls = kind == "all-reduce-tls" ? WorkerProcesses.Tls : null;
        var endpoints = args[2].Split(',');
        var port = int.Parse(endpoints[rank].Split(':')[1], CultureInfo.InvariantCulture);
        await using var plane = new DataPlane(IPAddress.Loopback, port, tls: tls);
        using var group = await plane.JoinAsync("bench", rank, endpoints, WorkerProcesses.Secret, TimeSpan.FromSeconds(60));
        // Collectives run on a dedicated thread, as on a silo's device worker (never a thread-pool thread).
        var median = await DeviceWorker.RunOnce("rank", 1, () =>
        {
            var data = new byte[size];
            Random.Shared.NextBytes(data);
            for (var i = 0; i < data.Length; i += 4) data[i + 3] = 0x3f; // keep the floats finite
            var slice = size / group.WorldSize;
            var (sends, receives) = (Enumerable.Range(0, group.WorldSize).Select(r => (ReadOnlyMemory<byte>)data.AsMemory(r * slice, slice)).ToList(),
                Enumerable.Range(0, group.WorldSize).Select(_ => (Memory<byte>)new byte[slice]).ToList());
            ReplicaBlocks? blocks = null;
            IReadOnlyList<Memory<byte>> pieces = [];
            if (kind == UnevenAllReduce.PiecesKind) (blocks, pieces) = UnevenAllReduce.PiecesOf(group.WorldSize, rank, data);
            void Collective()
            {
                if (allToAll) group.AllToAll(sends, receives);
                else if (blocks is not null) group.AllReduceSum(pieces, blocks);
                else group.AllReduceSum(data);
            }
            Collective();
            var times = new List<double>();
            for (var i = 0; i < Iterations; i++)
            {
                group.AllReduceSum(new byte[4]); // a barrier, so that every rank starts the timed round together
                var watch = Stopwatch.StartNew();
                Collective();
                times.Add(watch.Elapsed.TotalSeconds);
            }
            return Statistics.Median(times);
        });
        Console.WriteLine(median.ToString("R", CultureInfo.InvariantCulture));
        return 0;
    }

    /// <summary>Receives or sends <paramref name="args"/>[1] bytes per round over one TCP connection (the receiver prints the median bytes/s).</summary>
    public static async Task<int> RawWorker(string[] args)
    {
        var (role, size, port) = (args[0], int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture));
        var buffer = new byte[size];
        if (role == "receive")
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            using var socket = await listener.AcceptSocketAsync();
            TcpPeerLink.Configure(socket);
            var rates = new List<double>();
            for (var i = 0; i <= Iterations; i++)
            {
                var watch = Stopwatch.StartNew();
                for (var got = 0; got < size;) got += await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
                if (i > 0) rates.Add(size / watch.Elapsed.TotalSeconds);
                await socket.SendAsync(new byte[1], SocketFlags.None);
            }
            Console.WriteLine(Statistics.Median(rates).ToString("R", CultureInfo.InvariantCulture));
        }
        else
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            TcpPeerLink.Configure(socket);
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await socket.ConnectAsync(IPAddress.Loopback, port);
                    break;
                }
                catch (SocketException) when (attempt < 100)
                {
                    await Task.Delay(50);
                }
            }
            var ack = new byte[1];
            for (var i = 0; i <= Iterations; i++)
            {
                for (var sent = 0; sent < size;) sent += await socket.SendAsync(buffer.AsMemory(sent), SocketFlags.None);
                await socket.ReceiveAsync(ack, SocketFlags.None);
            }
        }
        return 0;
    }

    /// <summary>The slowest rank's median seconds for <paramref name="kind"/> (all-reduce or all-to-all) of <paramref name="size"/> bytes over <paramref name="world"/> processes.</summary>
    public static async Task<double> Measure(string kind, int world, int size)
    {
        var endpoints = string.Join(",", WorkerProcesses.FreePorts(world).Select(p => $"127.0.0.1:{p}"));
        var outputs = await WorkerProcesses.RunRanks(Enumerable.Range(0, world).Select(r => new[] { "allreduce-worker", $"{r}", $"{size}", endpoints, kind }));
        return outputs.Select(o => double.Parse(o, CultureInfo.InvariantCulture)).Max();
    }
}
