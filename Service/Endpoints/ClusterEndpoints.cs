using System.Security.Claims;
using Elastic.Client;
using Elastic.Client.Http;
using Elastic.Service.Access;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Elastic.Service.Endpoints;

/// <summary>/api/v1/cluster (the silos and their devices) and /api/v1/me (who the credential says the caller is).</summary>
public static class ClusterEndpoints
{
    public static void MapClusterEndpoints(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/api/v1").WithTags("Cluster").RequireAuthorization();
        api.MapGet("/cluster", async (ClaimsPrincipal user, ElasticClient client, CancellationToken cancellation) =>
        {
            var caller = Caller.Of(user);
            var silos = await client.GetInventoryAsync(cancellation);
            // Job ids are tenant data: a user sees its own tenant's jobs in the schedule, an admin every job.
            var jobs = (await client.GetScheduleAsync(cancellation)).Where(j => caller.Sees(j.Standing.Tenant)).ToList();
            return TypedResults.Ok(new ClusterView(silos, silos.Sum(s => s.Devices), silos.Sum(s => s.DevicesInUse), jobs));
        }).WithSummary("The cluster's silos, their devices and how many are in use, and the scheduler's jobs (running and queued) with their shares");
        api.MapGet("/me", (ClaimsPrincipal user) =>
        {
            var caller = Caller.Of(user);
            return TypedResults.Ok(new ApiIdentity(caller.Tenant, caller.Role, caller.Credential));
        }).WithSummary("The tenant and role of the calling credential");
    }
}
