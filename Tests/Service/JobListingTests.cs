using Elastic.GrainInterfaces;
using Elastic.Service.Access;
using Elastic.Service.Endpoints;

namespace Elastic.Tests.Service;

/// <summary>Which jobs a caller sees and in which pages.</summary>
public sealed class JobListingTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 8, 0, 0, TimeSpan.Zero);

    private static readonly JobStatus[] Jobs =
    [
        Job("a-1", "team-a", 0, JobState.Completed), Job("a-2", "team-a", 1, JobState.Running), Job("b-1", "team-b", 1, JobState.Running),
        Job("a-3", "team-a", 1, JobState.Running), Job("a-4", "team-a", 3, JobState.Failed), Job("b-2", "team-b", 4, JobState.Pending),
    ];

    [Fact]
    public void A_tenant_pages_through_its_own_jobs_newest_first_and_ties_by_id()
    {
        var user = new Caller("team-a", ApiRole.User, "k");
        var seen = new List<string>();
        string? token = null;
        do
        {
            var (page, error) = JobListing.Page(Jobs, user, null, null, 2, token);
            Assert.Null(error);
            seen.AddRange(page!.Jobs.Select(j => j.JobId));
            token = page.NextPageToken;
        } while (token is not null);
        Assert.Equal(["a-4", "a-2", "a-3", "a-1"], seen);
    }

    [Fact]
    public void A_page_token_survives_jobs_submitted_meanwhile()
    {
        var user = new Caller("team-a", ApiRole.User, "k");
        var first = JobListing.Page(Jobs, user, null, null, 2, null).Page!;
        var later = Jobs.Append(Job("a-5", "team-a", 9, JobState.Pending));
        Assert.Equal(["a-3", "a-1"], JobListing.Page(later, user, null, null, 2, first.NextPageToken).Page!.Jobs.Select(j => j.JobId));
    }

    [Fact]
    public void An_admin_sees_every_tenant_and_filters_by_tenant_and_state()
    {
        var admin = new Caller("default", ApiRole.Admin, "k");
        Assert.Equal(6, JobListing.Page(Jobs, admin, null, null, null, null).Page!.Jobs.Count);
        Assert.Equal(["b-1"], JobListing.Page(Jobs, admin, "RUNNING", "team-b", null, null).Page!.Jobs.Select(j => j.JobId));
        // A user naming another tenant sees nothing of it.
        Assert.Empty(JobListing.Page(Jobs, new Caller("team-a", ApiRole.User, "k"), null, "team-b", null, null).Page!.Jobs);
    }

    [Theory]
    [InlineData("sleeping", null, null, "state")]
    [InlineData("3", null, null, "state")]
    [InlineData(null, 0, null, "pageSize")]
    [InlineData(null, 201, null, "pageSize")]
    [InlineData(null, null, "not-a-token", "pageToken")]
    [InlineData(null, null, "MTIzfA", "pageToken")]
    public void A_bad_query_is_refused_naming_the_parameter(string? state, int? pageSize, string? pageToken, string field)
    {
        var (page, error) = JobListing.Page(Jobs, new Caller("team-a", ApiRole.User, "k"), state, null, pageSize, pageToken);
        Assert.Null(page);
        Assert.Equal(field, error!.Field);
    }

    private static JobStatus Job(string id, string tenant, int minutes, JobState state) =>
        new(id, id, state, null, 0, 10, null, 0, null, T0.AddMinutes(minutes), null, null, false, Tenant: tenant);
}
