namespace Elastic.Tests;

/// <summary>One Azurite for a test class (or for a collection of them, <see cref="StorageEnvironment"/>).</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    public AzuriteProcess Azurite { get; private set; } = null!;

    public async Task InitializeAsync() => Azurite = await AzuriteProcess.StartAsync();

    public async Task DisposeAsync() => await Azurite.DisposeAsync();
}
