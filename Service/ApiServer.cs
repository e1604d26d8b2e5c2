using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Logging;

namespace Elastic.Service;

/// <summary>
/// The API on Kestrel in this process, in front of a cluster: a silo's (the embedded default: `elastic train` serves it on
/// localhost) or an Orleans client's (a service process of its own).
/// </summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiServer(WebApplication app, Uri address) => (_app, Address) = (app, address);

    /// <summary>Where it listens, with the port Kestrel chose when asked for 0.</summary>
    public Uri Address { get; }

    public IServiceProvider Services => _app.Services;

    /// <param name="configure">Replaces services before the API is built (tests inject a clock).</param>
    public static async Task<ApiServer> StartAsync(IGrainFactory grains, ApiOptions options, Action<IServiceCollection>? configure = null, CancellationToken cancellation = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Urls);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddElasticApi(grains, options);
        configure?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseElasticApi();
        await app.StartAsync(cancellation);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ApiServer(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
