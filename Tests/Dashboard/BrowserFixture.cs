using Elastic.Tests.Service;
using Microsoft.Playwright;

namespace Elastic.Tests.Dashboard;

/// <summary>
/// The API over a one-silo cluster of four virtual devices, and Debian's chromium driven by Playwright (test.sh installs it
/// with apt; Playwright never downloads a browser here). Screenshots go to artifacts/test-results/screenshots.
/// </summary>
public sealed class BrowserFixture() : ApiFixture(devices: 4)
{
    public static string Screenshots { get; } = Path.Combine(RepoPaths.Root, "artifacts", "test-results", "screenshots");

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        var chromium = Chromium();
        await base.InitializeAsync();
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = chromium, Headless = true });
        Directory.CreateDirectory(Screenshots);
    }

    /// <summary>A new page (its own session storage: signed out) on a desktop-sized viewport.</summary>
    public async Task<IPage> NewPage()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1360, Height = 980 }, BaseURL = Api.Address.ToString() });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        return page;
    }

    public override async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>Debian's chromium ($ELASTIC_CHROMIUM to use another); its absence fails the tests with what to do.</summary>
    private static string Chromium()
    {
        var path = Environment.GetEnvironmentVariable("ELASTIC_CHROMIUM") is { Length: > 0 } configured ? configured : "/usr/bin/chromium";
        return File.Exists(path) ? path : throw new InvalidOperationException($"no browser at {path}: install Debian's chromium (test.sh runs infra/local/debian-packages.sh install) or set ELASTIC_CHROMIUM");
    }
}
