namespace Elastic.Training.Collectives;

/// <summary>A collective could not complete: a peer died, stalled past the timeout, or broke the protocol.</summary>
public sealed class CollectiveException(string message, Exception? inner = null) : Exception(message, inner);
