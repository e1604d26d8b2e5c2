using Elastic.Grains.Devices;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Silo.Hosting;

/// <summary>
/// The devices of an in-process cluster (<c>elastic train --devices N</c>): virtual CPU devices, or CUDA devices where
/// device g of the cluster runs on GPU g mod k. Sharing a GPU between devices is allowed (and useful for testing data
/// parallelism on one card); the GPU's memory is then split between the devices planned on it.
/// </summary>
public sealed record InProcessDevices(string Kind, int Planned)
{
    /// <summary>What the silo's devices offer, for devices [<paramref name="first"/>, first + count) of the cluster.</summary>
    public SiloDeviceOptions For(int first, int count)
    {
        if (Kind != "cuda") return new SiloDeviceOptions { Count = count, ThreadsPerDevice = Environment.ProcessorCount };
        var gpus = ComputeDevices.CudaCount;
        if (gpus == 0) throw new InvalidOperationException("an in-process cluster of cuda devices needs a CUDA device, and libtorch sees none");
        var indices = Enumerable.Range(first, count).Select(g => g % gpus).ToList();
        var sharing = (Planned + gpus - 1) / gpus;
        return new SiloDeviceOptions
        {
            Kind = "cuda",
            Count = count,
            CudaIndices = indices,
            Model = ComputeDevices.Describe(new Device(TorchSharp.DeviceType.CUDA, indices[0])),
            MemoryMiB = (ComputeDevices.CudaMemoryMiB(indices[0]) ?? new SiloDeviceOptions().MemoryMiB * sharing) / sharing,
            ThreadsPerDevice = Environment.ProcessorCount,
        };
    }
}
