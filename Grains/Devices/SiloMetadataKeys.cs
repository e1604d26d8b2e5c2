namespace Elastic.Grains.Devices;

/// <summary>Keys under which a silo advertises its devices and data plane in Orleans silo metadata.</summary>
public static class SiloMetadataKeys
{
    public const string DeviceKind = "elastic.device-kind";
    /// <summary>How reports name the silo's devices, e.g. "cuda: NVIDIA H100 80GB HBM3".</summary>
    public const string DeviceModel = "elastic.device-model";
    public const string Devices = "elastic.devices";
    public const string DeviceMemoryMiB = "elastic.device-memory-mib";
    public const string ThreadsPerDevice = "elastic.threads-per-device";
    public const string DataPlane = "elastic.dataplane";
    /// <summary>What the silo measured of its devices and links when it started (DeviceMeasurement as JSON); absent when it did not.</summary>
    public const string Calibration = "elastic.calibration";
    /// <summary>What carries the silo's tensors to other processes: NCCL and its version, or frames over the data plane and why.</summary>
    public const string DeviceTransport = "elastic.device-transport";
    /// <summary>"true" on silos of spot (evictable) capacity: coordinators prefer the others.</summary>
    public const string Spot = "elastic.spot";
}
