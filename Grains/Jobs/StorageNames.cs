namespace Elastic.Grains.Jobs;

/// <summary>Grain storage providers the grains use; the silo host configures them.</summary>
public static class StorageNames
{
    public const string Jobs = "jobs";
}
