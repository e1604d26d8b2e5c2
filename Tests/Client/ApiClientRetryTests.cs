using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Elastic.Client;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;

namespace Elastic.Tests.Client;

/// <summary>The SDK's HTTP client against a stand-in API: 503 and 429 are waited out (Retry-After) and retried, a bounded number of times.</summary>
public sealed class ApiClientRetryTests
{
    private static readonly JobStatus Status = new("job-1", "retry", JobState.Running, null, 3, 10, 2.5, 100, null, DateTimeOffset.UnixEpoch, null, null, false);

    [Fact]
    public async Task Answers_503_and_429_with_retry_after_are_retried_until_the_api_answers()
    {
        using var api = new StubApi([HttpStatusCode.ServiceUnavailable, HttpStatusCode.TooManyRequests, HttpStatusCode.OK]);
        using var client = ElasticApiClient.Create(api.Address, "ek_test");

        var status = await client.GetStatusAsync("job-1").WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(("job-1", 3L), (status.JobId, status.CommittedStep));
        Assert.Equal(3, api.Requests);
    }

    [Fact]
    public async Task An_api_that_stays_unavailable_is_given_up_on_after_the_attempts_with_the_sdks_exception()
    {
        using var api = new StubApi(Enumerable.Repeat(HttpStatusCode.ServiceUnavailable, 10).ToArray());
        using var client = ElasticApiClient.Create(api.Address, "ek_test");

        var error = await Assert.ThrowsAsync<ClusterUnavailableException>(() => client.GetStatusAsync("job-1").WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Contains("the cluster is restarting", error.Message);
        Assert.Equal(4, api.Requests);
    }

    /// <summary>Answers the n-th request with the n-th status (Retry-After: 0 on 503 and 429; a problem body; the status JSON on 200).</summary>
    private sealed class StubApi : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly HttpStatusCode[] _answers;
        private int _requests;

        public StubApi(HttpStatusCode[] answers)
        {
            _answers = answers;
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Address = new Uri($"http://127.0.0.1:{port}/");
            _listener.Prefixes.Add(Address.ToString());
            _listener.Start();
            _ = Serve();
        }

        public Uri Address { get; }
        public int Requests => _requests;

        private async Task Serve()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }
                var answer = _answers[Math.Min(Interlocked.Increment(ref _requests) - 1, _answers.Length - 1)];
                context.Response.StatusCode = (int)answer;
                byte[] body;
                if (answer == HttpStatusCode.OK)
                {
                    context.Response.ContentType = "application/json";
                    body = JsonSerializer.SerializeToUtf8Bytes(Status, ApiJson.Options);
                }
                else
                {
                    context.Response.Headers["Retry-After"] = "0";
                    context.Response.ContentType = "application/problem+json";
                    body = Encoding.UTF8.GetBytes("""{"title":"Service Unavailable","status":503,"detail":"the cluster is restarting"}""");
                }
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        }

        public void Dispose() => _listener.Close();
    }
}
