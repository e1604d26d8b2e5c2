using System.Collections.Concurrent;
using Elastic.Planning.Hardware;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Training.Calibration;

/// <summary>
/// A silo's measurement of its first device (its devices are alike) and of its links, taken once per process and device kind:
/// silos that share a process (an embedded cluster, the tests) share the figures rather than measure each other's noise.
/// </summary>
public static class SiloCalibration
{
    private static readonly ConcurrentDictionary<(string Device, int Threads), Lazy<Task<DeviceMeasurement>>> Measured = new();

    public static Task<DeviceMeasurement> MeasureAsync(Device device, int threadsPerDevice, DataPlane plane, DataPlaneTls? tls) =>
        Measured.GetOrAdd((device.ToString(), threadsPerDevice), _ => new Lazy<Task<DeviceMeasurement>>(async () =>
        {
            var measured = await DeviceWorker.RunOnce("calibration", threadsPerDevice, () => DeviceCalibration.Measure(device));
            var (intra, inter) = await LinkCalibration.MeasureAsync(plane, tls);
            return measured with { IntraNode = intra, InterNode = inter };
        })).Value;
}
