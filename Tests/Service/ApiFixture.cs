using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Service;
using Elastic.Service.Access;
using Elastic.Tests.Cluster;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Elastic.Tests.Service;

/// <summary>A one-silo cluster with two virtual devices (or more) and the HTTP API in front of it on a real socket, its clock a fake.</summary>
public class ApiFixture : IAsyncLifetime
{
    private readonly int _devices;

    public ApiFixture() : this(2)
    {
    }

    protected ApiFixture(int devices) => _devices = devices;

    public static readonly string AdminKey = ApiKeySecret.New().Text;

    public TestCluster Cluster { get; private set; } = null!;
    public ApiServer Api { get; private set; } = null!;
    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);
    public string Exports { get; } = Directory.CreateTempSubdirectory("elastic-api-exports-").FullName;

    public virtual async Task InitializeAsync()
    {
        Cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: _devices);
        Api = await StartApi(new ApiOptions { BootstrapAdminKey = AdminKey, ExportDirectory = Exports });
    }

    /// <summary>Another API over the same cluster (other limits, bearer tokens), with this fixture's clock.</summary>
    public Task<ApiServer> StartApi(ApiOptions options) =>
        ApiServer.StartAsync(Cluster.Cluster.Client, options, services => services.AddSingleton<TimeProvider>(Time));

    /// <summary>A client that presents <paramref name="credential"/> as a bearer token (none: no Authorization header).</summary>
    public HttpClient As(string? credential, ApiServer? api = null)
    {
        var client = new HttpClient { BaseAddress = (api ?? Api).Address, Timeout = TimeSpan.FromMinutes(2) };
        if (credential is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", credential);
        return client;
    }

    /// <summary>A new key of <paramref name="tenant"/>, created by the admin.</summary>
    public async Task<CreatedKey> KeyFor(string tenant, ApiRole role = ApiRole.User, double? expiresInDays = null)
    {
        using var admin = As(AdminKey);
        var response = await admin.PostAsJsonAsync("/api/v1/keys", new CreateKeyRequest(tenant, role, $"{tenant} test key", expiresInDays), ApiJson.Options);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<CreatedKey>(ApiJson.Options))!;
    }

    /// <summary>Asserts a problem-details answer with <paramref name="status"/>; returns its detail.</summary>
    public static async Task<string> Problem(HttpResponseMessage response, System.Net.HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal((int)status, problem.RootElement.GetProperty("status").GetInt32());
        return problem.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() ?? "" : "";
    }

    public virtual async Task DisposeAsync()
    {
        await Api.DisposeAsync();
        await Cluster.DisposeAsync();
        Directory.Delete(Exports, recursive: true);
    }
}
