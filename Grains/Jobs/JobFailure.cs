namespace Elastic.Grains.Jobs;

/// <summary>A failure of a job's coordination whose message already says what went wrong, where (shown as the job's error or event).</summary>
public sealed class JobFailure(string message) : Exception(message);
