namespace Elastic.GrainInterfaces;

/// <summary>
/// A training unit could not load a checkpoint because its stored data is damaged, truncated or missing (the
/// message names the chunk). The job falls back to an older checkpoint; any other restore failure fails it.
/// </summary>
[GenerateSerializer, Alias("Elastic.CheckpointUnreadableException")]
public sealed class CheckpointUnreadableException : Exception
{
    public CheckpointUnreadableException() { }

    public CheckpointUnreadableException(string message) : base(message) { }
}
