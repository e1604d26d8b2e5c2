using Elastic.Grains.Devices;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Silo.Hosting;

/// <summary>Which devices a silo offers: every CUDA device when there are any (kind auto or cuda), otherwise the configured number of virtual CPU devices.</summary>
public static class DeviceDiscovery
{
    public static SiloDeviceOptions Resolve(string kind, SiloDeviceOptions configured)
    {
        var cudaDevices = kind == "cpu" || !cuda.is_available() ? 0 : cuda.device_count();
        if (kind == "cuda" && cudaDevices == 0) throw new InvalidOperationException("Elastic:Devices:Kind = cuda, but no CUDA device is available (is this a CUDA build? see README, ElasticTorchBackend)");
        return cudaDevices > 0
            ? configured with
            {
                Kind = "cuda", Count = cudaDevices, CudaIndices = [.. Enumerable.Range(0, cudaDevices)], Model = ComputeDevices.Describe(new Device(TorchSharp.DeviceType.CUDA, 0)),
                MemoryMiB = ComputeDevices.CudaMemoryMiB(0) ?? configured.MemoryMiB,
            }
            : configured with { Kind = "cpu", Model = "cpu" };
    }
}
