namespace Elastic.Cli;

/// <summary>A user-facing failure: the message is printed as is, without a stack trace.</summary>
public sealed class CliException(string message) : Exception(message);
