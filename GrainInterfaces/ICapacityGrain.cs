namespace Elastic.GrainInterfaces;

/// <summary>The cluster's devices (key <see cref="DefaultKey"/>): the inventory from membership and silo metadata, and who holds what.</summary>
[Alias("Elastic.ICapacityGrain")]
public interface ICapacityGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    [Alias("GetInventory")] Task<IReadOnlyList<SiloInventory>> GetInventory();

    /// <summary>Allocates the largest of <paramref name="acceptableCounts"/> that the free devices allow (replacing what the job held); empty when none fits.</summary>
    [Alias("Allocate")] Task<IReadOnlyList<DeviceSlot>> Allocate(string jobId, IReadOnlyList<int> acceptableCounts);

    [Alias("Release")] Task Release(string jobId);
}
