namespace Elastic.GrainInterfaces;

/// <summary>
/// A job asking for devices: where it stands in the scheduler's order, the device counts it accepts (dp x pp x tp), the
/// devices it would rather keep (they hold its state), silos it must avoid (their replicas stopped answering; membership may
/// not have noticed yet), and how many devices of one silo each replica needs (its tensor-parallel group). With <see cref="KeepWhenShort"/> (a layout a user
/// asked for), a request no width of which fits leaves the job's devices as they were instead of taking them away.
/// <see cref="Serving"/>: devices of the job's old units that may still have to serve its state during the re-plan (their silos
/// do not finish draining until the job next reviews its capacity).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.AllocationRequest")]
public sealed record AllocationRequest(
    [property: Id(0)] string JobId,
    [property: Id(6)] JobStanding Standing,
    [property: Id(1)] IReadOnlyList<int> Widths,
    [property: Id(2)] IReadOnlyList<DeviceSlot> Prefer,
    [property: Id(3)] IReadOnlyList<SiloAddress> Exclude,
    [property: Id(4)] int TensorParallel = 1,
    [property: Id(5)] bool KeepWhenShort = false,
    [property: Id(7)] IReadOnlyList<DeviceSlot>? Serving = null);
