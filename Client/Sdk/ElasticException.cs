using Elastic.Jobs;

namespace Elastic.Client;

/// <summary>A failure the SDK reports to its caller; the message says what and why.</summary>
public class ElasticException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The cluster refused the job spec; <see cref="Errors"/> lists every problem with its field and value.</summary>
public sealed class JobSpecRejectedException(IReadOnlyList<SpecError> errors) : ElasticException(new SpecValidationException(errors).Message)
{
    public IReadOnlyList<SpecError> Errors { get; } = errors;
}

/// <summary>The idempotency key was already used for a job with a different spec.</summary>
public sealed class IdempotencyConflictException(string message) : ElasticException(message);

/// <summary>No job has this id.</summary>
public sealed class JobNotFoundException(string jobId) : ElasticException($"no job '{jobId}' in this cluster")
{
    public string JobId { get; } = jobId;
}

/// <summary>The job cannot do that now: it is in the wrong state (resuming a running job), or it has no (such) checkpoint.</summary>
public sealed class JobStateException(string message) : ElasticException(message);

/// <summary>A layout asked for a running job cannot run; the message names every reason. Nothing changed.</summary>
public sealed class LayoutRejectedException(string message) : ElasticException(message);

/// <summary>The cluster could not be reached, or stopped answering.</summary>
public sealed class ClusterUnavailableException(string message, Exception? inner = null) : ElasticException(message, inner);

/// <summary>The API refused the credential (missing, unknown, revoked, expired) or its role does not allow the call.</summary>
public sealed class ElasticAccessDeniedException(string message) : ElasticException(message);
