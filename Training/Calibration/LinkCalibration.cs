using System.Diagnostics;
using System.Net;
using Elastic.Planning.Hardware;
using Elastic.Training.Collectives;

namespace Elastic.Training.Calibration;

/// <summary>
/// Measures the data plane's links as the cost model sees a ring collective: two ranks all-reduce a few floats (latency: the
/// two hops of a two-rank all-reduce) and a large buffer (bus bandwidth: what is left once the latency is taken off). Between
/// two ranks on one data plane the link is in memory (device threads of one silo); to a second listener on loopback it is the
/// sockets, framing and checks every silo-to-silo link pays (on one machine, the whole of it; across machines the network
/// comes on top, which this does not see).
/// </summary>
public static class LinkCalibration
{
    private const int LargeFloats = 4 << 20; // 16 MiB
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>The link between two ranks of <paramref name="plane"/>, and over loopback TCP to a second listener (TLS as <paramref name="tls"/>).</summary>
    public static async Task<(LinkProfile Intra, LinkProfile Inter)> MeasureAsync(DataPlane plane, DataPlaneTls? tls = null)
    {
        var intra = await Between(plane, plane, "calibrate-intra");
        await using var other = new DataPlane(IPAddress.Loopback, tls: tls);
        var inter = await Between(plane, other, "calibrate-inter");
        return (intra, inter);
    }

    private static async Task<LinkProfile> Between(DataPlane first, DataPlane second, string group)
    {
        group = $"{group}-{Guid.NewGuid():N}";
        var secret = GroupSecret.New();
        string[] endpoints = [first.Endpoint, second.Endpoint];
        var joined = await Task.WhenAll(first.JoinAsync(group, 0, endpoints, secret, Timeout), second.JoinAsync(group, 1, endpoints, secret, Timeout));
        try
        {
            var times = await Task.WhenAll(joined.Select(c => Task.Factory.StartNew(() => Time(c), TaskCreationOptions.LongRunning)));
            var (small, large) = times[0];
            var latency = small / 2;
            var bandwidth = LargeFloats * 4.0 / Math.Max(large - small, 1e-9);
            return new LinkProfile { BusBandwidthGBs = bandwidth / 1e9, LatencyMicroseconds = latency * 1e6 };
        }
        finally
        {
            foreach (var c in joined) c.Dispose();
        }
    }

    /// <summary>Median seconds of an all-reduce of a few floats and of a large buffer (each after one untimed).</summary>
    private static (double Small, double Large) Time(Communicator communicator)
    {
        var small = new byte[4 * 4];
        var large = new byte[LargeFloats * 4];
        return (Median(communicator, small, 50), Median(communicator, large, 5));
    }

    private static double Median(Communicator communicator, byte[] buffer, int repetitions)
    {
        var times = new List<double>();
        for (var i = 0; i <= repetitions; i++)
        {
            var watch = Stopwatch.StartNew();
            communicator.AllReduceSum(buffer);
            if (i > 0) times.Add(watch.Elapsed.TotalSeconds);
        }
        return DeviceCalibration.Median(times);
    }
}
