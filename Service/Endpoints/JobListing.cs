using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Service.Access;

namespace Elastic.Service.Endpoints;

/// <summary>
/// Which jobs a caller is shown and in what pages: its tenant's (an admin's: all, or one tenant's), optionally in one
/// state, newest first (ties by id), cut after the job a page token names, so that jobs submitted meanwhile never
/// shift a page.
/// </summary>
public static class JobListing
{
    public const int DefaultPageSize = 50, MaxPageSize = 200;

    public static (JobPage? Page, SpecError? Error) Page(IEnumerable<JobStatus> jobs, Caller caller, string? state, string? tenant, int? pageSize, string? pageToken)
    {
        JobState? wanted = null;
        if (state is not null)
        {
            if (!Enum.TryParse<JobState>(state, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(state, out _))
                return (null, new SpecError("state", state, $"must be one of {string.Join(", ", Enum.GetNames<JobState>().Select(n => n.ToLowerInvariant()))}"));
            wanted = parsed;
        }
        var size = pageSize ?? DefaultPageSize;
        if (size is < 1 or > MaxPageSize) return (null, new SpecError("pageSize", size.ToString(CultureInfo.InvariantCulture), $"must be 1 to {MaxPageSize}"));
        (DateTimeOffset SubmittedAt, string JobId)? after = null;
        if (pageToken is not null)
        {
            after = Decode(pageToken);
            if (after is null) return (null, new SpecError("pageToken", pageToken, "is not a token this API gave out"));
        }

        var visible = jobs.Where(j => caller.Sees(j.Tenant) && (tenant is null || j.Tenant == tenant) && (wanted is null || j.State == wanted))
            .OrderByDescending(j => j.SubmittedAt).ThenBy(j => j.JobId, StringComparer.Ordinal)
            .Where(j => after is not { } cut || j.SubmittedAt < cut.SubmittedAt || (j.SubmittedAt == cut.SubmittedAt && string.CompareOrdinal(j.JobId, cut.JobId) > 0))
            .Take(size + 1)
            .ToList();
        var page = visible.Take(size).ToList();
        return (new JobPage(page, visible.Count > size ? Encode(page[^1]) : null), null);
    }

    private static string Encode(JobStatus last) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{last.SubmittedAt.UtcTicks.ToString(CultureInfo.InvariantCulture)}|{last.JobId}"));

    private static (DateTimeOffset, string)? Decode(string token)
    {
        if (token.Length > 400 || !Base64Url.IsValid(token)) return null;
        var parts = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(token)).Split('|', 2);
        return parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
            && ticks >= DateTimeOffset.MinValue.UtcTicks && ticks <= DateTimeOffset.MaxValue.UtcTicks && parts[1].Length > 0
            ? (new DateTimeOffset(ticks, TimeSpan.Zero), parts[1])
            : null;
    }
}
