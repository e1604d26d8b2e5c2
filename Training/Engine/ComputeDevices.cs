using System.Diagnostics;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The devices this process can train on, and how reports name them ("cpu", "cuda: NVIDIA H100 80GB HBM3").
/// libtorch tells how many CUDA devices there are but not what they are; nvidia-smi does (name and memory),
/// and where it is missing a device is named by its index.
/// </summary>
public static class ComputeDevices
{
    private static readonly Lazy<IReadOnlyList<(string Name, long? MemoryMiB)>> Cuda = new(Discover);

    /// <summary>How many CUDA devices libtorch sees (0 on a CPU build or a machine without GPUs).</summary>
    public static int CudaCount => Cuda.Value.Count;

    /// <summary>What <c>--device auto|cpu|cuda</c> names: "cuda" or "cpu". Throws when cuda is asked for and there is none.</summary>
    public static string ResolveKind(string requested, string what) => requested switch
    {
        "cpu" => "cpu",
        "auto" => CudaCount > 0 ? "cuda" : "cpu",
        "cuda" when CudaCount > 0 => "cuda",
        "cuda" => throw new ArgumentException($"{what} = cuda, but no CUDA device is available on this machine (libtorch sees none: a CPU-only libtorch, or no GPU driver)"),
        _ => throw new ArgumentException($"{what} = {requested}: must be auto, cpu or cuda"),
    };

    /// <summary>The report name of <paramref name="device"/>.</summary>
    public static string Describe(Device device) =>
        device.type == TorchSharp.DeviceType.CUDA ? $"cuda: {Cuda.Value.ElementAtOrDefault(Math.Max(device.index, 0)).Name ?? $"device {device.index}"}" : "cpu";

    /// <summary>Memory of CUDA device <paramref name="index"/> in MiB, when nvidia-smi says.</summary>
    public static long? CudaMemoryMiB(int index) => Cuda.Value.ElementAtOrDefault(index).MemoryMiB;

    private static IReadOnlyList<(string Name, long? MemoryMiB)> Discover()
    {
        var count = cuda.is_available() ? cuda.device_count() : 0;
        if (count == 0) return [];
        var described = Query();
        return Enumerable.Range(0, count).Select(i => i < described.Count ? described[i] : ($"device {i}", (long?)null)).ToList();
    }

    private static List<(string Name, long? MemoryMiB)> Query()
    {
        try
        {
            using var smi = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-gpu=name,memory.total --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            });
            if (smi is null) return [];
            var lines = smi.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            smi.WaitForExit(5000);
            return lines.Select(line => line.Split(',', StringSplitOptions.TrimEntries))
                .Select(f => (f[0], f.Length > 1 && long.TryParse(f[1], out var mib) ? mib : (long?)null)).ToList();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return []; // no nvidia-smi on this machine
        }
    }
}
