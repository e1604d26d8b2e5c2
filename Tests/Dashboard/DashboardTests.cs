using Elastic.Client.Http;
using Elastic.Jobs;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Elastic.Tests.Dashboard;

/// <summary>
/// The dashboard in a real browser: sign-in with an API key, the tenant's jobs (and no other tenant's), a job's page updating
/// live while it trains (steps, the loss curve with held-out points, events), its layout grid marking what a re-plan moved,
/// and the cluster page with the schedule. Each page's screenshot is kept as a test artifact.
/// </summary>
public sealed class DashboardTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    [Fact]
    public async Task A_signed_in_tenant_watches_its_job_train_live_sees_a_replan_in_the_layout_grid_and_the_cluster()
    {
        using var owner = ElasticApiClient.Create(browser.Api.Address, (await browser.KeyFor("team-web")).Key);
        using var stranger = ElasticApiClient.Create(browser.Api.Address, (await browser.KeyFor("team-other")).Key);
        var jobId = await owner.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with
        {
            Name = "dashboard-demo",
            // Above the other tenant's job: equal priorities would share the 4 devices, and this one is to hold them all.
            Priority = 1,
            Devices = new DeviceSpec { Min = 1, Max = 4 },
            Parallel = new ParallelSpec { Tensor = 2 },
            Eval = new EvalSpec { Every = 10, Batches = 1 },
        });
        var hidden = await stranger.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Name = "not-yours", Devices = new DeviceSpec { Min = 1, Max = 1 } });
        try
        {
            var page = await browser.NewPage();
            await page.GotoAsync("/");
            await Expect(page.Locator("#api-key")).ToBeVisibleAsync();
            await page.FillAsync("#api-key", "ek_0123456789ab_" + new string('A', 43));
            await page.ClickAsync("button[type=submit]");
            await Expect(page.Locator(".sign-in .error")).ToContainTextAsync("API key ek_0123456789ab_… is not known");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.Screenshots, "sign-in.png") });

            await page.FillAsync("#api-key", (await browser.KeyFor("team-web")).Key);
            await page.ClickAsync("button[type=submit]");
            await Expect(page.Locator("#identity")).ToHaveTextAsync("team-web (user)");

            // Jobs: the tenant's own, with its state and layout; never another tenant's.
            var row = page.Locator($"#jobs tr[data-job='{jobId}']");
            await Expect(row).ToContainTextAsync("running");
            await Expect(row).ToContainTextAsync("dp 2 · pp 1 · tp 2");
            await Expect(page.Locator("#jobs")).Not.ToContainTextAsync("not-yours");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.Screenshots, "jobs.png") });

            // The job's page, live: the step advances while it is open, the loss curve grows, held-out points appear.
            await row.Locator("a").ClickAsync();
            await Expect(page.Locator("#events li[data-kind='planned']")).ToBeVisibleAsync();
            var step = await page.Locator("#step").TextContentAsync();
            await Expect(page.Locator("#step")).Not.ToHaveTextAsync(step!);
            await Expect(page.Locator("#loss-chart circle.held-out").First).ToBeVisibleAsync();
            Assert.True(await page.EvalOnSelectorAsync<int>("#loss-chart polyline.train", "line => line.points.numberOfItems") > 1);
            await Expect(page.Locator("#layout td")).ToHaveCountAsync(4);
            await Expect(page.Locator("#layout td.changed")).ToHaveCountAsync(0);
            // The layout in the --plan notation, and the step time the planner predicted for it beside the one measured.
            await Expect(page.Locator("#layout-notation")).ToHaveTextAsync("dp=2,pp=1,tp=2");
            await Expect(page.Locator("#step-time")).ToContainTextAsync("ms predicted");

            // A re-plan while the page is open: the event appears and the grid marks the ranks whose device changed.
            await owner.ReplanAsync(jobId, "dp=1,tp=4");
            await Expect(page.Locator("#events li[data-kind='replanned']")).ToContainTextAsync("requested: dp=1,pp=1,tp=4 asked for; dp=2,pp=1,tp=2 -> dp=1,pp=1,tp=4");
            await Expect(page.Locator("#layout")).ToContainTextAsync("tp 3");
            Assert.True(await page.Locator("#layout td.changed").CountAsync() >= 1);
            await Expect(page.Locator("#layout").Locator("xpath=..")).ToContainTextAsync("changed from generation 1");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.Screenshots, "job.png"), FullPage = true });

            // The cluster: the silo with its devices in use, and the schedule with this tenant's job only.
            await page.ClickAsync("nav a[data-page='cluster']");
            await Expect(page.Locator("#silos tbody tr")).ToHaveCountAsync(1);
            await Expect(page.Locator("#silos tbody tr")).ToContainTextAsync("4 / 4");
            await Expect(page.Locator("#schedule")).ToContainTextAsync(jobId);
            await Expect(page.Locator("#schedule")).Not.ToContainTextAsync(hidden);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.Screenshots, "cluster.png") });

            // Signing out forgets the key.
            await page.ClickAsync("#sign-out");
            await Expect(page.Locator("#api-key")).ToBeVisibleAsync();
            Assert.Null(await page.EvaluateAsync<string?>("sessionStorage.getItem('elastic-api-key')"));
        }
        finally
        {
            await owner.CancelAsync(jobId);
            await stranger.CancelAsync(hidden);
            await browser.Cluster.Finish(jobId);
            await browser.Cluster.Finish(hidden);
        }
    }

    [Fact]
    public async Task The_dashboard_is_served_with_a_content_security_policy_and_needs_no_credential()
    {
        using var anonymous = browser.As(null);
        var response = await anonymous.GetAsync("/dashboard/");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("script-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await anonymous.GetAsync("/dashboard/secrets.json")).StatusCode);
        using var noRedirects = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = browser.Api.Address };
        Assert.Equal("/dashboard/", (await noRedirects.GetAsync("/")).Headers.Location?.ToString());
    }
}
