using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Elastic.Client;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Service;
using Elastic.Service.Access;
using Elastic.Silo.Hosting;

namespace Elastic.Benchmarks;

/// <summary>
/// The HTTP API against the Orleans client on the same one-silo cluster, alternating in the same run: submit and status
/// latency (p50, p99, sequential calls) and status requests per second (16 callers at once); then 100 server-sent-event
/// watchers of one training job against 100 Orleans-client watchers of it: how late each receives each step after the
/// first watcher of either kind did.
/// </summary>
internal static class ApiLatency
{
    private const int Concurrency = 16, Watchers = 100;

    public static async Task<int> Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        await using var cluster = await EmbeddedCluster.StartAsync([1], Path.Combine(Path.GetTempPath(), $"elastic-api-bench-{Guid.NewGuid():N}"));
        var adminKey = ApiKeySecret.New().Text;
        // Limits far above the load: the benchmark measures the API, not its rate limiter.
        await using var api = await ApiServer.StartAsync(cluster.Grains, new ApiOptions
        {
            Urls = "http://127.0.0.1:0",
            BootstrapAdminKey = adminKey,
            RateLimit = new RateLimitOptions { RequestsPerMinute = 100_000_000, Burst = 1_000_000 },
        });
        using var admin = ElasticApiClient.Create(api.Address, adminKey);
        using var http = ElasticApiClient.Create(api.Address, (await admin.CreateKeyAsync(new CreateKeyRequest(Tenants.Default, ApiRole.User, "benchmark", null))).Key);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]));
        var orleans = connection.Client;
        await orleans.WaitForDevicesAsync(1, TimeSpan.FromSeconds(30));

        var fanOut = await FanOut(http, orleans);

        // A job that waits for devices the cluster lacks, so submitting it trains nothing; each is cancelled, untimed.
        var waiting = new TrainingSpec { Name = "api-bench", Steps = 10, Devices = new DeviceSpec { Min = 2, Max = 2 }, Batch = new BatchSpec { Global = 16, Micro = 8 } };
        var statusOf = await orleans.SubmitAsync(waiting);
        var paths = new (string Name, IElasticClient Client)[] { ("HTTP API (Kestrel -> grain call in the silo)", http), ("Orleans client (gateway)", orleans) };
        var figures = paths.ToDictionary(p => p.Name, _ => (Submit: new List<double>(), Status: new List<double>(), PerSecond: new List<double>()));
        for (var round = 0; round < rounds; round++)
            foreach (var (name, client) in paths)
            {
                await Sequential(200, () => client.GetStatusAsync(statusOf));
                var status = await Sequential(1000, () => client.GetStatusAsync(statusOf));
                var submit = await Sequential(100, async () => await client.SubmitAsync(waiting), after: id => client.CancelAsync(id));
                var perSecond = await Throughput(TimeSpan.FromSeconds(3), () => client.GetStatusAsync(statusOf));
                figures[name].Status.AddRange(status);
                figures[name].Submit.AddRange(submit);
                figures[name].PerSecond.Add(perSecond);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round + 1}, {name}: status p50 {Statistics.Median(status):F2} ms, submit p50 {Statistics.Median(submit):F2} ms, {perSecond:F0} status/s"));
            }
        await orleans.CancelAsync(statusOf);

        var inv = CultureInfo.InvariantCulture;
        var (viaHttp, viaOrleans) = (figures[paths[0].Name], figures[paths[1].Name]);
        var rows = paths.Select(p => figures[p.Name]).Select((f, i) => string.Create(inv,
            $"| {paths[i].Name} | {Statistics.Median(f.Submit):F2} | {Statistics.Percentile(f.Submit, 99):F2} | {Statistics.Median(f.Status):F2} | {Statistics.Percentile(f.Status, 99):F2} | {Statistics.Median(f.PerSecond):F0} |"));
        var table = string.Join("\n", [
            "| path | submit p50 (ms) | submit p99 (ms) | status p50 (ms) | status p99 (ms) | status requests/s |",
            "|---|---:|---:|---:|---:|---:|",
            .. rows,
            "",
            string.Create(inv, $"**HTTP / Orleans: status p50 {Statistics.Median(viaHttp.Status) / Statistics.Median(viaOrleans.Status):F2}x, submit p50 {Statistics.Median(viaHttp.Submit) / Statistics.Median(viaOrleans.Submit):F2}x, status throughput {Statistics.Median(viaHttp.PerSecond) / Statistics.Median(viaOrleans.PerSecond):F2}x.** " +
                $"One silo in this process, its API on loopback HTTP/1.1 with an API key checked per request (one grain call to the key registry); {rounds} alternating rounds of 1000 sequential status calls, 100 sequential submits (of a job that waits for devices, cancelled after each, untimed) and 3 s of status calls from {Concurrency} callers at once; percentiles over all rounds, requests/s the median round."),
            "",
            "Server-sent events: one job training 300 steps on one device, watched at once by 100 SSE watchers (`GET /api/v1/jobs/{id}/watch`) and 100 Orleans-client watchers (`WatchAsync`, long polls on the job grain). Lag: when a watcher received a step, after the first watcher of either kind received it.",
            "",
            "| watchers | steps received (all watchers) | lag p50 (ms) | lag p99 (ms) |",
            "|---|---:|---:|---:|",
            .. fanOut]);
        Console.WriteLine(table);
        BenchmarkRecord.Write("api", "The HTTP API against the Orleans client: latency, throughput and SSE fan-out",
            "dotnet run -c Release --project Benchmarks -- api", table);
        return 0;
    }

    /// <summary>Runs <paramref name="call"/> <paramref name="count"/> times one after another; each call's milliseconds (<paramref name="after"/> untimed).</summary>
    private static async Task<List<double>> Sequential<T>(int count, Func<Task<T>> call, Func<T, Task>? after = null)
    {
        var times = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var watch = Stopwatch.StartNew();
            var result = await call();
            times.Add(watch.Elapsed.TotalMilliseconds);
            if (after is not null) await after(result);
        }
        return times;
    }

    private static async Task<double> Throughput<T>(TimeSpan duration, Func<Task<T>> call)
    {
        var count = 0L;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (watch.Elapsed < duration)
            {
                await call();
                Interlocked.Increment(ref count);
            }
        }));
        return count / watch.Elapsed.TotalSeconds;
    }

    /// <summary>The SSE and Orleans watchers of one training job: rows of the fan-out table.</summary>
    private static async Task<string[]> FanOut(ElasticApiClient http, ElasticClient orleans)
    {
        var spec = new TrainingSpec
        {
            Name = "fan-out",
            Steps = 300,
            Model = new ModelSpec { Layers = 2, DModel = 64, Heads = 4, Context = 64 },
            Batch = new BatchSpec { Global = 8, Micro = 8 },
            Eval = new EvalSpec { Every = 0, Batches = 1 },
            Devices = new DeviceSpec { Min = 1, Max = 1 },
        };
        var jobId = await orleans.SubmitAsync(spec);
        // Receipts by watcher: (step, timestamp).
        var receipts = new ConcurrentDictionary<(string Kind, int Watcher), List<(long Step, long At)>>();
        async Task Watch(string kind, int watcher, IAsyncEnumerable<JobProgress> progress)
        {
            var mine = receipts[(kind, watcher)] = [];
            await foreach (var p in progress)
            {
                var at = Stopwatch.GetTimestamp();
                mine.AddRange(p.Steps.Select(s => (s.Step, at)));
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Watchers).SelectMany(w => new[]
        {
            Watch("SSE", w, http.WatchAsync(jobId)),
            Watch("Orleans", w, orleans.WatchAsync(jobId)),
        }));
        var first = receipts.Values.SelectMany(r => r).GroupBy(r => r.Step).ToDictionary(g => g.Key, g => g.Min(r => r.At));
        return new[] { "SSE", "Orleans" }.Select(kind =>
        {
            var mine = receipts.Where(r => r.Key.Kind == kind).SelectMany(r => r.Value).ToList();
            var lags = mine.Select(r => Stopwatch.GetElapsedTime(first[r.Step], r.At).TotalMilliseconds).ToList();
            return string.Create(CultureInfo.InvariantCulture,
                $"| {Watchers} {(kind == "SSE" ? "SSE (HTTP API)" : "Orleans client")} | {mine.Count} of {Watchers * spec.Steps} | {Statistics.Median(lags):F1} | {Statistics.Percentile(lags, 99):F1} |");
        }).ToArray();
    }
}
