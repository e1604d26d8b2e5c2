using Elastic.Grains.Devices;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Units.Devices;

/// <summary>A shard group's hold on a device: who, for which job and generation, and how to tell it that it lost the device.</summary>
public sealed record DeviceLease(string Holder, string Job, int Generation, Action? Revoked = null);

/// <summary>
/// This silo's devices: one dedicated worker thread each, and which shard group holds each one. The
/// capacity grain decides who gets a device; the lease here is the local fence that keeps two shard groups
/// (say, of two generations) from sharing one.
/// </summary>
public sealed class SiloDevices : IDisposable
{
    private readonly DeviceWorker[] _workers;
    private readonly DeviceLease?[] _holders;
    private readonly (string Job, Trainer Trainer)?[] _handedOver;
    private readonly Lock _gate = new();

    public SiloDevices(SiloDeviceOptions options, string siloName)
    {
        Options = options;
        _workers = Enumerable.Range(0, options.Count).Select(i => new DeviceWorker($"{siloName}/device-{i}")).ToArray();
        _holders = new DeviceLease?[options.Count];
        _handedOver = new (string, Trainer)?[options.Count];
    }

    public SiloDeviceOptions Options { get; }

    /// <summary>
    /// Leases device <paramref name="device"/> to <paramref name="lease"/>'s holder (again, if it already holds it) and returns its worker.
    /// A device still held by another waits up to <paramref name="patience"/> for its release: the capacity grain hands a device
    /// to its next job as soon as the last one gives it up, which can be a moment before that job's unit lets go of it here.
    /// A lease of an older generation of the same job is taken at once: that generation can never commit again (generations
    /// are fenced), so a unit of it whose release was lost in a fault must not keep the device from its own job; it is told.
    /// </summary>
    public async Task<DeviceWorker> AcquireAsync(int device, DeviceLease lease, TimeSpan patience)
    {
        if (device < 0 || device >= _workers.Length)
            throw new ArgumentOutOfRangeException(nameof(device), device, $"this silo has {_workers.Length} devices");
        var deadline = DateTime.UtcNow + patience;
        while (true)
        {
            DeviceLease? superseded = null;
            var taken = false;
            lock (_gate)
            {
                var current = _holders[device];
                if (current is not null && current.Holder != lease.Holder && current.Job == lease.Job && current.Generation < lease.Generation)
                    superseded = current;
                if (current is null || current.Holder == lease.Holder || superseded is not null)
                {
                    _holders[device] = lease;
                    taken = true;
                }
                else if (DateTime.UtcNow >= deadline)
                    throw new InvalidOperationException($"device {device} is held by {current.Holder}; {lease.Holder} cannot take it (waited {patience.TotalSeconds:0.#} s for its release)");
            }
            if (taken)
            {
                superseded?.Revoked?.Invoke();
                return _workers[device];
            }
            await Task.Delay(20);
        }
    }

    public void Release(int device, string holder)
    {
        lock (_gate)
            if (device >= 0 && device < _holders.Length && _holders[device]?.Holder == holder) _holders[device] = null;
    }

    /// <summary>
    /// Leaves <paramref name="trainer"/> (its tensors stay on the device) for the next generation of <paramref name="job"/>
    /// on this device. Whatever was left before and not taken is disposed on the device's thread.
    /// </summary>
    public async Task HandOverAsync(int device, string job, Trainer trainer, int threads)
    {
        (string Job, Trainer Trainer)? previous;
        lock (_gate) (previous, _handedOver[device]) = (_handedOver[device], (job, trainer));
        if (previous is { } stale) await DisposeOnDevice(device, stale.Trainer, threads);
    }

    /// <summary>Takes what <paramref name="job"/>'s previous generation handed over on this device; null when nothing (or another job's) is there.</summary>
    public async Task<Trainer?> TakeOverAsync(int device, string job, int threads)
    {
        (string Job, Trainer Trainer)? left;
        lock (_gate) (left, _handedOver[device]) = (_handedOver[device], null);
        if (left is not { } found) return null;
        if (found.Job == job) return found.Trainer;
        await DisposeOnDevice(device, found.Trainer, threads);
        return null;
    }

    /// <summary>The steps of what <paramref name="job"/>'s previous generation handed over on this device, left there; null when nothing of it is.</summary>
    public long? ParkedSteps(int device, string job)
    {
        // A parked trainer runs nothing: its step count does not change while it lies here.
        lock (_gate) return _handedOver[device] is { } left && left.Job == job ? left.Trainer.CompletedSteps : null;
    }

    /// <summary>Frees whatever an earlier generation left on this device: the unit that takes the device now does not adopt it.</summary>
    public async Task DiscardAsync(int device, int threads)
    {
        (string Job, Trainer Trainer)? left;
        lock (_gate) (left, _handedOver[device]) = (_handedOver[device], null);
        if (left is { } found) await DisposeOnDevice(device, found.Trainer, threads);
    }

    private Task DisposeOnDevice(int device, Trainer trainer, int threads) => _workers[device].Run(threads, () =>
    {
        trainer.Dispose();
        return true;
    });

    public Device TorchDevice(int device) => Options.Kind == "cuda"
        ? new Device(TorchSharp.DeviceType.CUDA, Options.CudaIndices[device])
        : CPU;

    public void Dispose()
    {
        foreach (var worker in _workers) worker.Dispose();
    }
}
