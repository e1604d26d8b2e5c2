namespace Elastic.Tests;

/// <summary>
/// Test classes that point the process's storage variables (<c>ELASTIC_STORAGE_CONNECTION_STRING</c>, read wherever a dataset or
/// model is opened) at an Azurite: the variables are one per process, so these classes share one Azurite and run one at a time.
/// </summary>
[CollectionDefinition(Name)]
public sealed class StorageEnvironment : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "storage environment";
}
