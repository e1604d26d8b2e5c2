using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Grains.Devices;

/// <summary>
/// This silo's devices: one dedicated worker thread each, and which shard group holds each one. The
/// capacity grain decides who gets a device; the lease here is the local fence that keeps two shard groups
/// (say, of two generations) from sharing one.
/// </summary>
public sealed class SiloDevices : IDisposable
{
    private readonly DeviceWorker[] _workers;
    private readonly string?[] _holders;
    private readonly Lock _gate = new();

    public SiloDevices(SiloDeviceOptions options, string siloName)
    {
        Options = options;
        _workers = Enumerable.Range(0, options.Count).Select(i => new DeviceWorker($"{siloName}/device-{i}")).ToArray();
        _holders = new string?[options.Count];
    }

    public SiloDeviceOptions Options { get; }

    /// <summary>Leases device <paramref name="device"/> to <paramref name="holder"/> (again, if it already holds it) and returns its worker.</summary>
    public DeviceWorker Acquire(int device, string holder)
    {
        if (device < 0 || device >= _workers.Length)
            throw new ArgumentOutOfRangeException(nameof(device), device, $"this silo has {_workers.Length} devices");
        lock (_gate)
        {
            if (_holders[device] is { } current && current != holder)
                throw new InvalidOperationException($"device {device} is held by {current}; {holder} cannot take it");
            _holders[device] = holder;
        }
        return _workers[device];
    }

    public void Release(int device, string holder)
    {
        lock (_gate)
            if (device >= 0 && device < _holders.Length && _holders[device] == holder) _holders[device] = null;
    }

    public Device TorchDevice(int device) => Options.Kind == "cuda" ? new Device(TorchSharp.DeviceType.CUDA, device) : CPU;

    public void Dispose()
    {
        foreach (var worker in _workers) worker.Dispose();
    }
}
