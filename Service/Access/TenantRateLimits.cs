using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;

namespace Elastic.Service.Access;

/// <summary>
/// One token bucket per tenant (per remote address before authentication), so that one tenant's script cannot starve the
/// others. A refused request gets 429 with Retry-After and a problem body.
/// </summary>
public static class TenantRateLimits
{
    public static IServiceCollection AddTenantRateLimits(this IServiceCollection services, RateLimitOptions limits)
    {
        var refill = TimeSpan.FromMinutes(1) / Math.Max(1, limits.RequestsPerMinute);
        return services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                RateLimitPartition.GetTokenBucketLimiter(PartitionOf(context), _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = Math.Max(1, limits.Burst),
                    TokensPerPeriod = 1,
                    ReplenishmentPeriod = refill,
                    QueueLimit = 0,
                    AutoReplenishment = true,
                }));
            o.OnRejected = async (rejected, _) =>
            {
                var wait = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : refill;
                var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
                rejected.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await ApiProblems.Write(rejected.HttpContext, StatusCodes.Status429TooManyRequests,
                    $"too many requests for {PartitionOf(rejected.HttpContext)}: at most {limits.Burst} at once and {limits.RequestsPerMinute} a minute; retry after {seconds} s");
            };
        });
    }

    private static string PartitionOf(HttpContext context) =>
        Caller.Find(context.User) is { } caller ? $"tenant {caller.Tenant}" : $"address {context.Connection.RemoteIpAddress}";
}
