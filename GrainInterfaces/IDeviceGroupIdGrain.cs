namespace Elastic.GrainInterfaces;

/// <summary>
/// Draws the ids of device-transport (NCCL) communicators on one silo, the one that holds each group's first rank: the process
/// that draws an id hosts its bootstrap. The coordinator hands the ids to the units with their assignments, over Orleans, never
/// over the data plane. Keyed by <see cref="DeviceKey"/> of that silo.
/// </summary>
public interface IDeviceGroupIdGrain : IGrainWithStringKey
{
    /// <summary><paramref name="count"/> new ids (0: only whether it has NCCL), none on a silo without NCCL; either way what its tensors go over, and why.</summary>
    Task<DrawnDeviceGroupIds> Draw(int count);
}

/// <summary>The ids a silo drew (none when it has no NCCL), whether it has NCCL, and what carries its tensors to other processes ("NCCL 2.27.3 (libnccl.so.2)", or frames and why).</summary>
[GenerateSerializer, Immutable, Alias("Elastic.DrawnDeviceGroupIds")]
public sealed record DrawnDeviceGroupIds([property: Id(0)] IReadOnlyList<byte[]> Ids, [property: Id(1)] bool Nccl, [property: Id(2)] string Transport);
