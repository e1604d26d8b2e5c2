using System.Diagnostics;
using System.Globalization;
using Elastic.Training.Collectives.Nccl;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// <c>nccl [path]</c>: NCCL through our binding, on this machine's GPUs: between two GPUs (one thread each, as two device
/// threads of a silo would be) each sends the other a buffer and receives one (ncclSend/ncclRecv in one group), and the two
/// all-gather their halves; on a machine with one GPU the one rank sends to itself. The baseline, in the same run, is what
/// tensor links do between device threads: one device-to-device copy of the same bytes. Both give the same bits (checked).
/// </summary>
internal static class NcclBandwidth
{
    private const int Rounds = 7;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static async Task<int> Run(string[] args)
    {
        if (!cuda.is_available())
        {
            Console.Error.WriteLine("nccl: this machine has no CUDA device");
            return 2;
        }
        var nccl = NcclLibrary.TryLoad(args.Length > 0 ? args[0] : null, out var noNccl);
        var runtime = CudaRuntime.TryLoad(out var noCuda);
        if (nccl is null || runtime is null)
        {
            Console.Error.WriteLine($"nccl: {(nccl is null ? noNccl : noCuda)}");
            return 2;
        }
        var ranks = Math.Min(2, cuda.device_count());
        var id = nccl.NewUniqueId();
        var comms = await Task.WhenAll(Enumerable.Range(0, ranks).Select(r => Task.Factory.StartNew(
            () => NcclComm.Join(nccl, runtime, r, id, ranks, r, Timeout, "nccl-bench"), TaskCreationOptions.LongRunning)));
        var inv = CultureInfo.InvariantCulture;
        var rows = new List<string>();
        try
        {
            foreach (var mib in new[] { 16, 64, 256 })
            {
                var times = await Task.WhenAll(comms.Select(c => Task.Factory.StartNew(() => Time(c, mib), TaskCreationOptions.LongRunning)));
                var (copy, sendRecv, gather) = (Statistics.Median(times[0].Copy), Statistics.Median(times[0].SendRecv), Statistics.Median(times[0].Gather));
                var bytes = mib * (1L << 20) / 1e9;
                // nccl-tests' bus bandwidth: a send/recv moves its size; an all-gather of the whole moves (n-1)/n of it per rank.
                var gatherBus = ranks == 1 ? bytes : bytes * (ranks - 1) / ranks;
                rows.Add(string.Create(inv, $"| {mib} MiB | {copy * 1e3:F2} ({bytes / copy:F0} GB/s) | {sendRecv * 1e3:F2} ({bytes / sendRecv:F0} GB/s, {copy / sendRecv:F2}x) | {gather * 1e3:F2} ({gatherBus / gather:F0} GB/s) |"));
            }
        }
        finally
        {
            foreach (var comm in comms) comm.Dispose();
        }
        var table = string.Join("\n", new[]
        {
            "| buffer | device-to-device copy (ms) | NCCL send/recv (ms) | NCCL all-gather (ms) |",
            "|---|---:|---:|---:|",
        }.Concat(rows).Append("").Append(string.Create(inv,
            $"NCCL {nccl.VersionText} ({nccl.Name}) through the project's binding, {ranks} rank(s) on {ranks} GPU(s) ({Training.Engine.ComputeDevices.Describe(new Device(DeviceType.CUDA, 0))}), bf16 buffers, {Rounds} rounds after one untimed, medians of rank 0's times; the copy is what tensor links do between device threads ({(ranks == 1 ? "on the one GPU" : "from the other GPU")}). Bus bandwidth as nccl-tests counts it. Every transfer's bits equal the sender's (checked every round).")));
        Console.WriteLine(table);
        Console.WriteLine(AbortedJoin(nccl, runtime));
        BenchmarkRecord.Write("nccl", "NCCL through the binding", "dotnet run -c Release --project Benchmarks -- nccl", table);
        return 0;
    }

    /// <summary>Rank 0 of two joins and rank 1 never comes: the join must end at its timeout with the communicator aborted.</summary>
    private static string AbortedJoin(NcclLibrary nccl, CudaRuntime runtime)
    {
        var timeout = TimeSpan.FromSeconds(3);
        var clock = Stopwatch.StartNew();
        try
        {
            NcclComm.Join(nccl, runtime, 0, nccl.NewUniqueId(), 2, 0, timeout, "nccl-bench-abort").Dispose();
            return "aborted join: FAILED, rank 0 of 2 joined alone";
        }
        catch (Training.Collectives.CollectiveException e)
        {
            var late = clock.Elapsed - timeout;
            return late < TimeSpan.FromSeconds(10)
                ? $"aborted join: ok after {clock.Elapsed.TotalSeconds:F1} s ({e.Message})"
                : $"aborted join: FAILED, it took {clock.Elapsed.TotalSeconds:F1} s for a {timeout.TotalSeconds:0} s timeout";
        }
    }

    private static (List<double> Copy, List<double> SendRecv, List<double> Gather) Time(NcclComm comm, int mib)
    {
        var device = new Device(DeviceType.CUDA, comm.Device);
        var peer = (comm.Rank + 1) % comm.Ranks;
        var elements = mib * (1L << 20) / 2;
        using var scope = NewDisposeScope();
        manual_seed(comm.Rank + 1);
        var mine = randn(elements, dtype: ScalarType.BFloat16, device: device);
        var theirs = empty_like(mine);
        var copied = empty_like(mine);
        var source = comm.Ranks == 1 ? mine : randn(elements, dtype: ScalarType.BFloat16, device: new Device(DeviceType.CUDA, peer));
        var half = mine.narrow(0, comm.Rank * (elements / comm.Ranks), elements / comm.Ranks);
        var whole = empty_like(mine);
        var (copy, sendRecv, gather) = (new List<double>(), new List<double>(), new List<double>());
        for (var round = 0; round <= Rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            copied.copy_(source);
            cuda.synchronize(device);
            var c = clock.Elapsed.TotalSeconds;

            clock.Restart();
            comm.Exchange([(peer, mine)], [(peer, theirs)], Timeout);
            var s = clock.Elapsed.TotalSeconds;

            clock.Restart();
            comm.AllGather(half, whole, Timeout);
            var g = clock.Elapsed.TotalSeconds;

            if (comm.Ranks == 1 && !theirs.equal(mine).item<bool>()) throw new InvalidOperationException("a send to itself came back with other bits");
            if (!whole.narrow(0, comm.Rank * (elements / comm.Ranks), elements / comm.Ranks).equal(half).item<bool>())
                throw new InvalidOperationException("the all-gather put other bits where this rank's half goes");
            if (round == 0) continue;
            copy.Add(c);
            sendRecv.Add(s);
            gather.Add(g);
        }
        return (copy, sendRecv, gather);
    }
}
