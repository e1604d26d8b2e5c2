using System.Globalization;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Service.Access;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Elastic.Service.Endpoints;

/// <summary>/api/v1/keys (admins only): create a key (its secret shown once), list keys (never a secret), revoke one.</summary>
public static class KeyEndpoints
{
    private const double MaxDays = 3650;

    public static void MapKeyEndpoints(this IEndpointRouteBuilder routes)
    {
        var keys = routes.MapGroup("/api/v1/keys").WithTags("Keys").RequireAuthorization(ApiAuthentication.AdminPolicy);
        keys.MapPost("/", Create).WithSummary("Create an API key for a tenant; its secret is in this answer only");
        keys.MapGet("/", async (IGrainFactory grains) => TypedResults.Ok(await Registry(grains).List())).WithSummary("List API keys (ids, tenants, roles; no secrets)");
        keys.MapDelete("/{keyId}", Revoke).WithSummary("Revoke an API key: it stops working at once");
    }

    private static async Task<Results<Created<CreatedKey>, ProblemHttpResult>> Create(CreateKeyRequest? request, IGrainFactory grains, TimeProvider time)
    {
        if (request is null) return ApiProblems.BadRequest("body", null, "expected { \"tenant\": \"team-a\", \"role\": \"user\" }");
        var errors = new List<SpecError>();
        if (Tenants.Problem(request.Tenant) is { } problem) errors.Add(new SpecError("tenant", request.Tenant, problem));
        if (!Enum.IsDefined(request.Role)) errors.Add(new SpecError("role", request.Role.ToString(), "must be user or admin"));
        if (request.Name is { Length: > 100 }) errors.Add(new SpecError("name", request.Name, "must be at most 100 characters"));
        if (request.ExpiresInDays is { } days && !(days > 0 && days <= MaxDays))
            errors.Add(new SpecError("expiresInDays", days.ToString(CultureInfo.InvariantCulture), $"must be more than 0 and at most {MaxDays}"));
        if (errors.Count > 0) return ApiProblems.Invalid(errors);

        var now = time.GetUtcNow();
        while (true)
        {
            var secret = ApiKeySecret.New();
            var info = new ApiKeyInfo(secret.Id, request.Tenant, request.Role, request.Name ?? "", now, request.ExpiresInDays is { } d ? now.AddDays(d) : null);
            if (await Registry(grains).Add(info, secret.Hash()))
                return TypedResults.Created($"/api/v1/keys/{secret.Id}", new CreatedKey(secret.Text, info));
        }
    }

    private static async Task<Results<Ok<ApiKeyInfo>, ProblemHttpResult>> Revoke(string keyId, IGrainFactory grains, TimeProvider time) =>
        await Registry(grains).Revoke(keyId, time.GetUtcNow()) is { } revoked
            ? TypedResults.Ok(revoked)
            : ApiProblems.Problem(StatusCodes.Status404NotFound, $"no API key '{keyId}'");

    private static IApiKeyRegistryGrain Registry(IGrainFactory grains) => grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.DefaultKey);
}
