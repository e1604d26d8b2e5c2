using System.Diagnostics;
using System.Globalization;
using System.Net;
using Elastic.Training.Collectives;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// <c>tensor-links [cpu|cuda]</c>: an all-reduce among four device threads of one process (one silo's tensor-parallel group,
/// on the CPU or on the GPUs, round-robin), of 16 and 64 MiB of fp32:
/// tensors handed over between the threads, into a new result (<see cref="Communicator.TensorAllReduceSum"/>) and over the
/// caller's own tensor as tensor parallelism sums (<see cref="Communicator.TensorAllReduceSumInPlace"/>), against the byte
/// collective they used before, with its host round-trip (tensor -> host bytes -> frames copied through in-memory links ->
/// host tensor -> device). Alternating rounds, medians; all give the same bits, which the run checks.
/// </summary>
internal static class TensorLinks
{
    private const int Ranks = 4, Rounds = 7;

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
            var group = $"tensor-links-{mib}";
            var endpoints = Enumerable.Repeat(plane.Endpoint, Ranks).ToArray();
            var secret = GroupSecret.New();
            var ranks = await Task.WhenAll(Enumerable.Range(0, Ranks).Select(r => plane.JoinAsync(group, r, endpoints, secret, TimeSpan.FromSeconds(60))));
            var times = await Task.WhenAll(ranks.Select(c => Task.Factory.StartNew(() => Time(c, mib, DeviceOf(c.Rank)), TaskCreationOptions.LongRunning)));
            foreach (var c in ranks) c.Dispose();
            var (bytes, tensors, inPlace) = (Statistics.Median(times[0].Bytes), Statistics.Median(times[0].Tensors), Statistics.Median(times[0].InPlace));
            var bus = 2.0 * (Ranks - 1) / Ranks * mib * (1 << 20) / 1e9;
            rows.Add(string.Create(inv, $"| {mib} MiB | {bytes * 1e3:F1} | {tensors * 1e3:F1} ({bytes / tensors:F2}x) | {inPlace * 1e3:F1} ({bytes / inPlace:F2}x) | {bus / bytes:F2} -> {bus / inPlace:F2} |"));
        }
        var table = string.Join("\n", new[]
        {
            "| buffer | byte collective (ms) | tensor links, new result (ms) | tensor links, in place (ms) | bus bandwidth (GB/s) |",
            "|---|---:|---:|---:|---:|",
        }.Concat(rows).Append("").Append(string.Create(inv,
            $"All-reduce among {Ranks} device threads of one process ({(onGpu ? $"CUDA, {cuda.device_count()} GPU(s)" : "CPU")}), fp32, {Rounds} alternating rounds after one untimed, medians of rank 0's times; bus bandwidth as nccl-tests counts it, 2(n-1)/n x size / time. All three give the bits of the canonical tree (checked every round).")));
        Console.WriteLine(table);
        BenchmarkRecord.Write(onGpu ? "tensor-links-cuda" : "tensor-links", $"Tensor links between device threads{(onGpu ? " (CUDA)" : "")}",
            $"dotnet run -c Release --project Benchmarks -- tensor-links{(onGpu ? " cuda" : "")}", table);
        return 0;
    }

    /// <summary>Seconds per all-reduce of each kind on this rank, alternating, after one untimed round of each.</summary>
    private static (List<double> Bytes, List<double> Tensors, List<double> InPlace) Time(Communicator ranks, int mib, Device device)
    {
        using var host = randn((long)mib << 18, generator: new Generator(7 + (ulong)ranks.Rank));
        using var input = host.to(device);
        var (bytes, tensors, inPlace) = (new List<double>(), new List<double>(), new List<double>());
        void Finish() { if (device.type == DeviceType.CUDA) cuda.synchronize(device); }
        double Seconds(Action run)
        {
            var watch = Stopwatch.StartNew();
            run();
            Finish();
            return watch.Elapsed.TotalSeconds;
        }
        for (var round = 0; round <= Rounds; round++)
        {
            Tensor? viaBytes = null, viaTensors = null;
            using var own = input.clone(); // the caller's own tensor, as a tensor-parallel sum has it (copied untimed)
            Finish();
            var (byteSeconds, tensorSeconds, inPlaceSeconds) = (Seconds(() => viaBytes = ViaBytes(ranks, input)),
                Seconds(() => viaTensors = ranks.TensorAllReduceSum(input)), Seconds(() => ranks.TensorAllReduceSumInPlace(own)));
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
