namespace Elastic.GrainInterfaces;

/// <summary>
/// A store the call needed (the checkpoint store, the job store) did not answer; nothing changed, and the same call can be
/// made again once it is back. The message names the store and the job's state.
/// </summary>
[GenerateSerializer, Alias("Elastic.StoreUnavailableException")]
public sealed class StoreUnavailableException : Exception
{
    public StoreUnavailableException() { }

    public StoreUnavailableException(string message) : base(message) { }
}
