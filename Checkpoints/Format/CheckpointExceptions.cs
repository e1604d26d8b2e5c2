namespace Elastic.Checkpoints.Format;

/// <summary>Stored checkpoint data is damaged, truncated or missing; the message names the chunk or file. Loading fails closed.</summary>
public sealed class CheckpointCorruptException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A writer of an older generation tried to commit over a newer one; nothing it wrote becomes visible.</summary>
public sealed class StaleGenerationException(string message) : Exception(message);
