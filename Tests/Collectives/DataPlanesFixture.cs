using System.Net;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Collectives;

/// <summary>
/// Two data planes ("silos") on loopback for collectives tests: ranks on one plane link in memory, across planes by TCP;
/// more planes of one rank each where a test wants ranks joined by TCP only. Each rank runs on a thread of its own.
/// </summary>
public abstract class DataPlanesFixture : IAsyncLifetime
{
    private readonly List<DataPlane> _apart = [];

    protected DataPlane SiloA { get; private set; } = null!;
    protected DataPlane SiloB { get; private set; } = null!;

    public Task InitializeAsync()
    {
        SiloA = new DataPlane(IPAddress.Loopback);
        SiloB = new DataPlane(IPAddress.Loopback);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var plane in _apart.Append(SiloA).Append(SiloB)) await plane.DisposeAsync();
    }

    /// <summary>A data plane of its own (another process's), disposed with the fixture.</summary>
    protected DataPlane Apart()
    {
        var plane = new DataPlane(IPAddress.Loopback);
        _apart.Add(plane);
        return plane;
    }

    /// <summary>Runs <paramref name="work"/> on every rank at once, each on a thread of its own (collectives block their caller).</summary>
    protected static Task<T[]> OnEachRank<T>(Communicator[] ranks, Func<Communicator, T> work) =>
        Task.WhenAll(ranks.Select(c => Task.Factory.StartNew(() => work(c), TaskCreationOptions.LongRunning)));
}
