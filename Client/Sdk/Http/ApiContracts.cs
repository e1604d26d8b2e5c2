using Elastic.GrainInterfaces;

namespace Elastic.Client.Http;

/// <summary>A job the API admitted.</summary>
public sealed record SubmittedJob(string JobId);

/// <summary>One page of jobs, newest first; <see cref="NextPageToken"/> fetches the next (null on the last page).</summary>
public sealed record JobPage(IReadOnlyList<JobStatus> Jobs, string? NextPageToken);

/// <summary>Resume from the checkpoint of <see cref="Step"/> (null: the latest).</summary>
public sealed record ResumeRequest(long? Step = null);

/// <summary>A layout for a running job, as `elastic replan --plan` takes it: "dp=2,tp=2", "dp=4,ep=2,zero=1".</summary>
public sealed record ReplanRequest(string Plan);

/// <summary>Export the checkpoint of <see cref="Step"/> (null: the latest) as a model folder.</summary>
public sealed record ExportRequest(long? Step = null);

/// <summary>Where the exported model was written, on the service's storage.</summary>
public sealed record ExportedModel(string Model);

/// <summary>A new key for <see cref="Tenant"/>; it expires after <see cref="ExpiresInDays"/> days (null: never).</summary>
public sealed record CreateKeyRequest(string Tenant, ApiRole Role = ApiRole.User, string? Name = null, double? ExpiresInDays = null);

/// <summary>A created key: <see cref="Key"/> is shown this once and cannot be recovered.</summary>
public sealed record CreatedKey(string Key, ApiKeyInfo Info);

/// <summary>The cluster's silos and their devices, and the scheduler's jobs (the caller's tenant's, or every job for an admin).</summary>
public sealed record ClusterView(IReadOnlyList<SiloInventory> Silos, int Devices, int DevicesInUse, IReadOnlyList<JobShare> Jobs);

/// <summary>Who a credential says its holder is: /api/v1/me.</summary>
public sealed record ApiIdentity(string Tenant, ApiRole Role, string Credential);
