using System.Diagnostics;
using System.Globalization;
using System.Net;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// <c>tensor-links [cpu|cuda]</c>: an all-reduce among four device threads of one process (one silo's tensor-parallel group,
/// on the CPU or on the GPUs, round-robin), of 16 and 64 MiB of fp32:
/// tensors handed over between the threads, into a new result (<see cref="Communicator.TensorAllReduceSum"/>) and over the
/// caller's own tensor as tensor parallelism sums (<see cref="Communicator.TensorAllReduceSumInPlace"/>), against the byte
/// collective they used before, with its host round-trip (tensor -> host bytes -> frames copied through in-memory links ->
/// host tensor -> device); and the data-parallel gradient all-reduce over the pieces of three replicas' blocks, through a
/// host wire as before and over tensor links; and an all-reduce between ranks of two data planes (frames over TCP), the byte
/// collective against the tensor collective's frames (on CUDA through kept page-locked copies). Alternating rounds, medians;
/// all give the same bits, which the run checks.
/// </summary>
internal static class TensorLinks
{
    private const int Ranks = 4, Rounds = 7;

    /// <summary>The gradient all-reduce's replicas and micro-batches: an uneven split, so that two replicas hold two pieces each.</summary>
    private const int Replicas = 3, MicroBatches = 8;

    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var onGpu = args.Length > 0 && args[0] == "cuda";
        if (onGpu && !cuda.is_available())
        {
            Console.Error.WriteLine("tensor-links cuda: this machine has no CUDA device");
            return 2;
        }
        Device DeviceOf(int rank) => onGpu ? new Device(DeviceType.CUDA, rank % cuda.device_count()) : CPU;
        await using var plane = new DataPlane(IPAddress.Loopback);
        var rows = new List<string>();
        foreach (var mib in new[] { 16, 64 })
        {
            var times = await OnThreads([.. Enumerable.Repeat(plane, Ranks)], $"tensor-links-{mib}", c => Time(c, mib, DeviceOf(c.Rank)));
            var (bytes, tensors, inPlace) = (Statistics.Median(times[0].Bytes), Statistics.Median(times[0].Tensors), Statistics.Median(times[0].InPlace));
            var bus = 2.0 * (Ranks - 1) / Ranks * mib * (1 << 20) / 1e9;
            rows.Add(string.Create(inv, $"| {mib} MiB | {bytes * 1e3:F1} | {tensors * 1e3:F1} ({bytes / tensors:F2}x) | {inPlace * 1e3:F1} ({bytes / inPlace:F2}x) | {bus / bytes:F2} -> {bus / inPlace:F2} |"));
        }
        var gradientRows = new List<string>();
        foreach (var mib in new[] { 16, 64 })
        {
            var blocks = new ReplicaBlocks(MicroBatches, Replicas);
            var times = await OnThreads([.. Enumerable.Repeat(plane, Replicas)], $"tensor-links-blocks-{mib}", c => TimeGradients(c, blocks, mib, DeviceOf(c.Rank)));
            var (wire, inPlace) = (Statistics.Median(times[0].Wire), Statistics.Median(times[0].InPlace));
            gradientRows.Add(string.Create(inv, $"| {mib} MiB | {string.Join(", ", Enumerable.Range(0, Replicas).Select(r => blocks.PiecesOf(r).Count))} | {wire * 1e3:F1} | {inPlace * 1e3:F1} ({wire / inPlace:F2}x) |"));
        }
        // Two ranks on two data planes: to the communicator, ranks of two processes, whose tensors go as frames over loopback TCP.
        await using var apart = new DataPlane(IPAddress.Loopback);
        var frameRows = new List<string>();
        foreach (var mib in new[] { 16, 64 })
        {
            var times = await OnThreads([plane, apart], $"tensor-links-frames-{mib}", c => Time(c, mib, DeviceOf(c.Rank)));
            var (bytes, tensors, inPlace) = (Statistics.Median(times[0].Bytes), Statistics.Median(times[0].Tensors), Statistics.Median(times[0].InPlace));
            frameRows.Add(string.Create(inv, $"| {mib} MiB | {bytes * 1e3:F1} | {tensors * 1e3:F1} ({bytes / tensors:F2}x) | {inPlace * 1e3:F1} ({bytes / inPlace:F2}x) |"));
        }
        var table = string.Join("\n", new[]
        {
            "| buffer | byte collective (ms) | tensor links, new result (ms) | tensor links, in place (ms) | bus bandwidth (GB/s) |",
            "|---|---:|---:|---:|---:|",
        }.Concat(rows).Append("").Append(string.Create(inv,
            $"All-reduce among {Ranks} device threads of one process ({(onGpu ? $"CUDA, {cuda.device_count()} GPU(s)" : "CPU")}), fp32, {Rounds} alternating rounds after one untimed, medians of rank 0's times; bus bandwidth as nccl-tests counts it, 2(n-1)/n x size / time. All three give the bits of the canonical tree (checked every round)."))
            .Append("").Append("| gradient | pieces per replica | through a host wire, byte collective (ms) | tensor links, in place (ms) |").Append("|---|---|---:|---:|")
            .Concat(gradientRows).Append("").Append(string.Create(inv,
            $"The data-parallel gradient all-reduce: {Replicas} replicas on device threads of one process over {MicroBatches} micro-batches, each holding its block as pieces of the canonical tree, summed over the blocks' leaves into the first piece: as replicas did before (each piece copied into one kept host wire, the byte collective over the wires, the sum copied back) and over tensor links as they do now (`TensorAllReduceSumInPlace` over the pieces). Same rounds and medians; the same bits, checked every round."))
            .Append("").Append("| between processes | byte collective (ms) | tensor frames, new result (ms) | tensor frames, in place (ms) |").Append("|---|---:|---:|---:|")
            .Concat(frameRows).Append("").Append(string.Create(inv,
            $"An all-reduce between 2 ranks on two data planes (to the communicator, two processes: frames over loopback TCP), fp32 on {(onGpu ? "the GPU(s)" : "the CPU")}: the byte collective (a device tensor through a pageable host copy each way) against the tensor collective, whose frames {(onGpu ? "a device reaches through kept page-locked host copies" : "are the CPU tensors' own bytes")}. Same rounds and medians; the same bits, checked every round.")));
        Console.WriteLine(table);
        BenchmarkRecord.Write(onGpu ? "tensor-links-cuda" : "tensor-links", $"Tensor links between device threads{(onGpu ? " (CUDA)" : "")}",
            $"dotnet run -c Release --project Benchmarks -- tensor-links{(onGpu ? " cuda" : "")}", table);
        return 0;
    }

    /// <summary>Joins a group of one rank per plane in <paramref name="planes"/> and runs <paramref name="run"/> on a thread of each (a device thread's part).</summary>
    private static async Task<T[]> OnThreads<T>(DataPlane[] planes, string group, Func<Communicator, T> run)
    {
        var endpoints = planes.Select(p => p.Endpoint).ToArray();
        var secret = GroupSecret.New();
        var joined = await Task.WhenAll(planes.Select((plane, r) => plane.JoinAsync(group, r, endpoints, secret, TimeSpan.FromSeconds(60))));
        try
        {
            return await Task.WhenAll(joined.Select(c => Task.Factory.StartNew(() => run(c), TaskCreationOptions.LongRunning)));
        }
        finally
        {
            foreach (var c in joined) c.Dispose();
        }
    }

    /// <summary>Seconds per all-reduce of each kind on this rank, alternating, after one untimed round of each.</summary>
    private static (List<double> Bytes, List<double> Tensors, List<double> InPlace) Time(Communicator ranks, int mib, Device device)
    {
        using var host = randn((long)mib << 18, generator: new Generator(7 + (ulong)ranks.Rank));
        using var input = host.to(device);
        var (bytes, tensors, inPlace) = (new List<double>(), new List<double>(), new List<double>());
        for (var round = 0; round <= Rounds; round++)
        {
            Tensor? viaBytes = null, viaTensors = null;
            using var own = input.clone(); // the caller's own tensor, as a tensor-parallel sum has it (copied untimed)
            Finish(device);
            var (byteSeconds, tensorSeconds, inPlaceSeconds) = (Seconds(device, () => viaBytes = ViaBytes(ranks, input)),
                Seconds(device, () => viaTensors = ranks.TensorAllReduceSum(input)), Seconds(device, () => ranks.TensorAllReduceSumInPlace(own)));
            using (viaBytes)
            using (viaTensors)
            using (var a = viaBytes!.cpu())
            using (var b = viaTensors!.cpu())
            using (var c = own.cpu())
                if (!a.bytes.SequenceEqual(b.bytes) || !a.bytes.SequenceEqual(c.bytes))
                    throw new InvalidOperationException($"rank {ranks.Rank}: the all-reduces differ in round {round}");
            if (round == 0) continue;
            bytes.Add(byteSeconds);
            tensors.Add(tensorSeconds);
            inPlace.Add(inPlaceSeconds);
        }
        return (bytes, tensors, inPlace);
    }

    /// <summary>Seconds per gradient all-reduce over <paramref name="blocks"/> through a host wire and over tensor links, alternating, after one untimed round.</summary>
    private static (List<double> Wire, List<double> InPlace) TimeGradients(Communicator ranks, ReplicaBlocks blocks, int mib, Device device)
    {
        var count = blocks.PiecesOf(ranks.Rank).Count;
        var inputs = Enumerable.Range(0, count).Select(k => randn((long)mib << 18, generator: new Generator(11 + 10 * (ulong)ranks.Rank + (ulong)k)).to(device)).ToArray();
        var pieces = inputs.Select(i => i.clone()).ToArray();
        var wire = new byte[(mib << 20) * count];
        var (wires, inPlace) = (new List<double>(), new List<double>());
        for (var round = 0; round <= Rounds; round++)
        {
            void Reset()
            {
                for (var k = 0; k < count; k++) pieces[k].copy_(inputs[k]);
                Finish(device);
            }
            Reset();
            var wireSeconds = Seconds(device, () => ViaWire(ranks, blocks, pieces, wire));
            var viaWire = HostBytes(pieces[0]);
            Reset();
            var inPlaceSeconds = Seconds(device, () => ranks.TensorAllReduceSumInPlace(pieces, blocks));
            if (!viaWire.AsSpan().SequenceEqual(HostBytes(pieces[0])))
                throw new InvalidOperationException($"rank {ranks.Rank}: the gradient all-reduces differ in round {round}");
            if (round == 0) continue;
            wires.Add(wireSeconds);
            inPlace.Add(inPlaceSeconds);
        }
        foreach (var t in inputs.Concat(pieces)) t.Dispose();
        return (wires, inPlace);
    }

    /// <summary>Waits for the device's queued work (on the CPU there is none).</summary>
    private static void Finish(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    private static double Seconds(Device device, Action run)
    {
        var watch = Stopwatch.StartNew();
        run();
        Finish(device);
        return watch.Elapsed.TotalSeconds;
    }

    private static byte[] HostBytes(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().cpu().contiguous().bytes.ToArray();
    }

    /// <summary>What a replica's gradient all-reduce did before tensor links: its pieces copied into one kept host wire, the byte collective, the sum copied back.</summary>
    private static void ViaWire(Communicator ranks, ReplicaBlocks blocks, Tensor[] pieces, byte[] wire)
    {
        using var scope = NewDisposeScope();
        var length = wire.Length / pieces.Length;
        var wires = pieces.Select((p, k) =>
        {
            p.detach().cpu().bytes.CopyTo(wire.AsSpan(k * length, length));
            return wire.AsMemory(k * length, length);
        }).ToArray();
        ranks.AllReduceSum(wires, blocks);
        var host = empty(pieces[0].shape, dtype: pieces[0].dtype);
        host.bytes = wire.AsSpan(0, length);
        pieces[0].copy_(host);
    }

    /// <summary>What a tensor-parallel sum did before tensor links: host bytes through the byte collective, and back.</summary>
    private static Tensor ViaBytes(Communicator ranks, Tensor local)
    {
        using var scope = NewDisposeScope();
        var bytes = local.detach().cpu().contiguous().bytes.ToArray();
        ranks.AllReduceSum(bytes);
        var host = empty(local.shape, dtype: local.dtype);
        host.bytes = bytes;
        return host.to(local.device, copy: true).MoveToOuterDisposeScope();
    }
}
