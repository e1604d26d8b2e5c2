using System.Net;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Service;
using Elastic.Service.Access;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Elastic.Tests.Service;

/// <summary>Who may call the API: keys (created, listed, revoked, expired), the admin role, bearer tokens, rate limits.</summary>
public sealed class ApiAccessTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    /// <summary>Every endpoint of the API, with a body where it takes one.</summary>
    public static TheoryData<string, string> Endpoints => new()
    {
        { "GET", "/api/v1/jobs" }, { "POST", "/api/v1/jobs" }, { "GET", "/api/v1/jobs/some-job" }, { "GET", "/api/v1/jobs/some-job/watch" },
        { "GET", "/api/v1/jobs/some-job/report" }, { "POST", "/api/v1/jobs/some-job/cancel" }, { "POST", "/api/v1/jobs/some-job/checkpoint" },
        { "POST", "/api/v1/jobs/some-job/resume" }, { "POST", "/api/v1/jobs/some-job/replan" }, { "POST", "/api/v1/jobs/some-job/export" },
        { "GET", "/api/v1/cluster" }, { "GET", "/api/v1/me" }, { "POST", "/api/v1/keys" }, { "GET", "/api/v1/keys" }, { "DELETE", "/api/v1/keys/0123456789ab" },
    };

    [Theory, MemberData(nameof(Endpoints))]
    public async Task Every_endpoint_answers_a_missing_malformed_or_unknown_credential_with_401_and_a_problem(string method, string path)
    {
        var unknown = ApiKeySecret.New();
        foreach (var (credential, reason) in new (string?, string)[] { (null, "required"), ("ek_not-a-key", "malformed"), (unknown.Text, "is not known") })
        {
            using var client = api.As(credential);
            var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent.Create(new { }) });
            var detail = await ApiFixture.Problem(response, HttpStatusCode.Unauthorized);
            Assert.Contains(reason, detail);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.DoesNotContain(unknown.Secret, await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task An_admin_creates_a_key_shown_once_lists_keys_without_secrets_and_a_revoked_key_stops_at_once()
    {
        var created = await api.KeyFor("team-keys");
        Assert.Matches("^ek_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", created.Key);
        using var user = api.As(created.Key);
        var me = await user.GetFromJsonAsync<ApiIdentity>("/api/v1/me", ApiJson.Options);
        Assert.Equal(new ApiIdentity("team-keys", ApiRole.User, created.Info.Id), me);

        using var admin = api.As(ApiFixture.AdminKey);
        var listed = await admin.GetStringAsync("/api/v1/keys");
        Assert.Contains(created.Info.Id, listed);
        Assert.DoesNotContain(ApiKeySecret.Parse(created.Key)!.Secret, listed);
        // A tenant's user manages no keys.
        Assert.Contains("admin", await ApiFixture.Problem(await user.GetAsync("/api/v1/keys"), HttpStatusCode.Forbidden));

        var revoked = await (await admin.DeleteAsync($"/api/v1/keys/{created.Info.Id}")).Content.ReadFromJsonAsync<ApiKeyInfo>(ApiJson.Options);
        Assert.Equal(api.Time.GetUtcNow(), revoked!.RevokedAt);
        var refused = await ApiFixture.Problem(await user.GetAsync("/api/v1/me"), HttpStatusCode.Unauthorized);
        Assert.Contains($"{created.Info.Id}", refused);
        Assert.Contains("revoked", refused);
        await ApiFixture.Problem(await admin.DeleteAsync("/api/v1/keys/0123456789ab"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_key_stops_working_when_it_expires()
    {
        var created = await api.KeyFor("team-expiry", expiresInDays: 1);
        using var user = api.As(created.Key);
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/v1/me")).StatusCode);
        api.Time.Advance(TimeSpan.FromDays(1));
        Assert.Contains("expired", await ApiFixture.Problem(await user.GetAsync("/api/v1/me"), HttpStatusCode.Unauthorized));
    }

    [Fact]
    public async Task A_bad_key_request_is_refused_naming_every_field()
    {
        using var admin = api.As(ApiFixture.AdminKey);
        var response = await admin.PostAsJsonAsync("/api/v1/keys", new CreateKeyRequest("Team A", ApiRole.User, new string('n', 101), -1), ApiJson.Options);
        var detail = await ApiFixture.Problem(response, HttpStatusCode.BadRequest);
        Assert.Contains("tenant = Team A", detail);
        Assert.Contains("name = ", detail);
        Assert.Contains("expiresInDays = -1", detail);
    }

    [Fact]
    public async Task Each_tenant_has_its_own_rate_limit_and_a_refusal_says_when_to_retry()
    {
        await using var limited = await api.StartApi(new ApiOptions { BootstrapAdminKey = ApiFixture.AdminKey, RateLimit = new RateLimitOptions { Burst = 3, RequestsPerMinute = 1 } });
        var (a, b) = (await api.KeyFor("team-busy"), await api.KeyFor("team-calm"));
        using var busy = api.As(a.Key, limited);
        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 5; i++) answers.Add(await busy.GetAsync("/api/v1/me"));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests],
            answers.Select(r => r.StatusCode));
        Assert.Contains("team-busy", await ApiFixture.Problem(answers[^1], HttpStatusCode.TooManyRequests));
        Assert.True(answers[^1].Headers.RetryAfter?.Delta > TimeSpan.Zero);
        using var calm = api.As(b.Key, limited);
        Assert.Equal(HttpStatusCode.OK, (await calm.GetAsync("/api/v1/me")).StatusCode);
    }

    [Fact]
    public async Task Callers_without_credentials_are_limited_by_address_before_authentication_and_a_bucket_refills()
    {
        await using var limited = await api.StartApi(new ApiOptions { BootstrapAdminKey = ApiFixture.AdminKey, RateLimit = new RateLimitOptions { Burst = 2, RequestsPerMinute = 120 } });
        using var anonymous = api.As(null, limited);
        var answers = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++) answers.Add((await anonymous.GetAsync("/api/v1/me")).StatusCode);
        // A flood of unauthenticated requests is refused before any credential is checked.
        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests], answers);

        var key = await api.KeyFor("team-refill");
        using var caller = api.As(key.Key, limited);
        Assert.Equal(HttpStatusCode.OK, (await caller.GetAsync("/api/v1/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await caller.GetAsync("/api/v1/me")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await caller.GetAsync("/api/v1/me")).StatusCode);
        // One token every half second: within a few seconds the tenant is served again.
        var again = await Bounded.Until(async c => (await caller.GetAsync("/api/v1/me", c)).StatusCode, s => s == HttpStatusCode.OK, "the bucket refilling", TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.OK, again);
    }

    [Fact]
    public async Task Bearer_tokens_name_their_tenant_and_expired_forged_or_tenantless_ones_are_refused()
    {
        var signingKey = Convert.ToBase64String(Encoding.UTF8.GetBytes("elastic-test-signing-key-of-32-bytes!!"));
        await using var withTokens = await api.StartApi(new ApiOptions
        {
            Jwt = new JwtOptions { SigningKey = signingKey, Issuer = "https://login.example/", Audience = "api://elastic", Tenants = { ["7f3c9a"] = "team-entra" } },
        });
        string Token(string key, DateTime expires, params Claim[] claims) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "https://login.example/",
            Audience = "api://elastic",
            Subject = new ClaimsIdentity(claims),
            NotBefore = expires.AddHours(-2),
            Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(key)), SecurityAlgorithms.HmacSha256),
        });
        var later = DateTime.UtcNow.AddHours(1);

        using (var user = api.As(Token(signingKey, later, new Claim("tid", "7f3c9a"), new Claim("sub", "ada")), withTokens))
            Assert.Equal(new ApiIdentity("team-entra", ApiRole.User, "token:ada"), await user.GetFromJsonAsync<ApiIdentity>("/api/v1/me", ApiJson.Options));
        using (var admin = api.As(Token(signingKey, later, new Claim("tid", "ops"), new Claim("sub", "root"), new Claim("roles", "Elastic.Admin")), withTokens))
            Assert.Equal(ApiRole.Admin, (await admin.GetFromJsonAsync<ApiIdentity>("/api/v1/me", ApiJson.Options))!.Role);

        var forgedKey = Convert.ToBase64String(Encoding.UTF8.GetBytes("someone-elses-signing-key-32-bytes!!!!"));
        foreach (var (token, reason) in new[]
        {
            (Token(signingKey, DateTime.UtcNow.AddMinutes(-5), new Claim("tid", "7f3c9a")), "expired"),
            (Token(forgedKey, later, new Claim("tid", "7f3c9a")), "signature"),
            (Token(signingKey, later, new Claim("sub", "nobody")), "'tid'"),
        })
        {
            using var client = api.As(token, withTokens);
            Assert.Contains(reason, await ApiFixture.Problem(await client.GetAsync("/api/v1/me"), HttpStatusCode.Unauthorized));
        }
        // Keys still work beside tokens.
        using var keyed = api.As((await api.KeyFor("team-keyed")).Key, withTokens);
        Assert.Equal(HttpStatusCode.OK, (await keyed.GetAsync("/api/v1/me")).StatusCode);
    }

    /// <summary>docs/openapi.json is the served document (ELASTIC_WRITE_OPENAPI=1 rewrites it after a deliberate change).</summary>
    [Fact]
    public async Task The_OpenAPI_document_is_served_lists_every_endpoint_and_is_the_one_in_the_docs()
    {
        using var anonymous = api.As(null);
        var document = (await anonymous.GetStringAsync("/openapi/v1.json")).ReplaceLineEndings("\n");
        foreach (var path in new[] { "/api/v1/jobs", "/api/v1/jobs/{jobId}", "/api/v1/jobs/{jobId}/watch", "/api/v1/jobs/{jobId}/replan", "/api/v1/keys/{keyId}", "/api/v1/cluster" })
            Assert.Contains($"\"{path}\"", document);
        var documented = Path.Combine(RepoPaths.Root, "docs", "openapi.json");
        if (Environment.GetEnvironmentVariable("ELASTIC_WRITE_OPENAPI") == "1") File.WriteAllText(documented, document);
        Assert.True(File.ReadAllText(documented).ReplaceLineEndings("\n") == document, "docs/openapi.json differs from the served document: run the test with ELASTIC_WRITE_OPENAPI=1 and commit it");
    }
}
