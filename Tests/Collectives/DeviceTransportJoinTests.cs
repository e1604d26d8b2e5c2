using System.Collections.Concurrent;
using System.Net;
using Elastic.GrainInterfaces;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Parallel;
using static TorchSharp.torch;

namespace Elastic.Tests.Collectives;

/// <summary>
/// A unit's groups take the device transport (NCCL; mailboxes here) in the groups the coordinator drew ids for, all ranks of a
/// group or none: a rank that cannot join, or whose join fails, leaves its group on frames, and the job's groups still join.
/// dp = 2 x tp = 2 with each replica on its own silo: the tensor groups share a process, the data groups span two.
/// </summary>
public sealed class DeviceTransportJoinTests : DataPlanesFixture
{
    private static readonly ParallelGrid Grid = ParallelGrid.Of(2, 1, 2);

    private DataPlane PlaneOf(int rank) => Grid.CoordinatesOf(rank).Data == 0 ? SiloA : SiloB;

    /// <summary>The plan's groups across processes, as the coordinator finds them, each with an id of its own.</summary>
    private Dictionary<string, byte[]> Ids()
    {
        var silos = new[] { SiloAddress.New(IPAddress.Loopback, 1, 1), SiloAddress.New(IPAddress.Loopback, 2, 1) };
        var devices = Enumerable.Range(0, Grid.Size).Select(r => new DeviceSlot(silos[Grid.CoordinatesOf(r).Data], r % 2, PlaneOf(r).Endpoint, "cuda: test")).ToList();
        var plan = ParallelPlan.Of(1, new Layout(Grid.Dp, Grid.Pp, Grid.Tp), devices);
        return plan.DeviceGroupsAcrossProcesses().Select((g, i) => (g.Name, Id: Enumerable.Repeat((byte)(i + 1), 128).ToArray())).ToDictionary(g => g.Name, g => g.Id);
    }

    /// <summary>Joins every rank's groups, rank r offered <paramref name="offer"/>(r, boxes, ids).</summary>
    private async Task<ProcessGroups[]> JoinAll(string name, Func<int, DeviceTransportJoin> offer) =>
        await Task.WhenAll(Enumerable.Range(0, Grid.Size).Select(r => ProcessGroups.JoinAsync(PlaneOf(r), name, Grid, r,
            [.. Enumerable.Range(0, Grid.Size).Select(p => PlaneOf(p).Endpoint)], TestSpecs.Secret, TimeSpan.FromSeconds(20), device: offer(r))));

    private static Func<byte[], Communicator, IDeviceTransport> Mailboxes(ConcurrentDictionary<string, MailboxDeviceTransport.Mailboxes> boxes, IReadOnlyDictionary<string, byte[]> ids, ConcurrentBag<MailboxDeviceTransport> made) =>
        (id, group) =>
        {
            // The id the group was given reaches every rank's join unchanged.
            Assert.Equal(ids[group.Group.Split('/')[^1]], id);
            var transport = new MailboxDeviceTransport(boxes.GetOrAdd(group.Group, _ => new()), group.Rank);
            made.Add(transport);
            return transport;
        };

    [Fact]
    public async Task Groups_across_processes_carry_tensors_over_the_device_transport_and_groups_within_one_keep_lending()
    {
        var ids = Ids();
        Assert.Equal(["dp[pp0,tp0]", "dp[pp0,tp1]"], ids.Keys.Order().ToArray());
        var boxes = new ConcurrentDictionary<string, MailboxDeviceTransport.Mailboxes>();
        var all = await JoinAll("device-all", _ => new DeviceTransportJoin(ids, Mailboxes(boxes, ids, []), ""));

        foreach (var groups in all)
        {
            Assert.Equal("mailboxes", groups.Transports[groups.Grid.GroupName(GridAxis.Data, groups.Rank)]);
            Assert.Equal("frames", groups.Transports[groups.Grid.GroupName(GridAxis.Tensor, groups.Rank)]);
            Assert.NotNull(groups.Along(GridAxis.Data)!.DeviceTransport);
            Assert.Null(groups.Along(GridAxis.Tensor)!.DeviceTransport);
        }
        var data = all.Select(g => g.Along(GridAxis.Data)!).ToArray();
        var sums = await OnEachRank(data, c =>
        {
            var before = c.BytesSent;
            using var x = full(1000, 1.5f + c.Rank);
            using var sum = c.TensorAllReduceSum(x);
            return (Sum: sum[0].item<float>(), Frames: c.BytesSent - before);
        });
        // The tensors went over the transport: no frames (the join's agreement was two one-byte all-gathers).
        Assert.All(sums, s => Assert.Equal((4f, 0L), s));
        Assert.Equal(8, boxes.Values.Sum(b => b.Moved)); // per rank: its chunk to the reduce-scatter, its sum to the all-gather
        foreach (var groups in all) groups.Dispose();
    }

    [Fact]
    public async Task A_rank_that_cannot_join_leaves_only_its_groups_on_frames_and_every_rank_of_them_says_which_rank_and_why()
    {
        var ids = Ids();
        var boxes = new ConcurrentDictionary<string, MailboxDeviceTransport.Mailboxes>();
        var all = await JoinAll("device-unable", r => r == 3 ? new DeviceTransportJoin(ids, null, "no CUDA runtime loads") : new DeviceTransportJoin(ids, Mailboxes(boxes, ids, []), ""));

        // Rank 3 is index 1 of dp[pp0,tp1]; dp[pp0,tp0] joins as before.
        Assert.Equal("frames (rank 1 cannot join a device transport: no CUDA runtime loads)", all[3].Transports["dp[pp0,tp1]"]);
        Assert.Equal("frames (rank 1 cannot join a device transport)", all[1].Transports["dp[pp0,tp1]"]);
        Assert.Null(all[1].Along(GridAxis.Data)!.DeviceTransport);
        Assert.All(new[] { all[0], all[2] }, g => Assert.Equal("mailboxes", g.Transports["dp[pp0,tp0]"]));
        foreach (var groups in all) groups.Dispose();
    }

    [Fact]
    public async Task A_join_that_fails_on_one_rank_lets_the_others_go_and_their_group_sends_frames()
    {
        var ids = Ids();
        var boxes = new ConcurrentDictionary<string, MailboxDeviceTransport.Mailboxes>();
        var made = new ConcurrentBag<MailboxDeviceTransport>();
        var joins = Mailboxes(boxes, ids, made);
        var all = await JoinAll("device-failed", r => new DeviceTransportJoin(ids,
            r == 2 ? (_, _) => throw new CollectiveException("ncclCommInitRankConfig failed: unhandled system error") : joins, ""));

        Assert.Equal("frames (rank 1 failed to join: ncclCommInitRankConfig failed: unhandled system error)", all[2].Transports["dp[pp0,tp0]"]);
        Assert.Equal("frames (rank 1 failed to join)", all[0].Transports["dp[pp0,tp0]"]);
        Assert.Null(all[0].Along(GridAxis.Data)!.DeviceTransport);
        // Rank 0 joined before it learned: its transport is let go. The other data group is not touched.
        Assert.Equal(3, made.Count);
        Assert.Single(made, t => t.Disposed);
        Assert.Equal("mailboxes", all[3].Transports["dp[pp0,tp1]"]);

        // The group still runs its collectives, as frames.
        var data = new[] { all[0], all[2] }.Select(g => g.Along(GridAxis.Data)!).ToArray();
        var sums = await OnEachRank(data, c =>
        {
            using var x = full(10, 1f + c.Rank);
            using var sum = c.TensorAllReduceSum(x);
            return sum[0].item<float>();
        });
        Assert.All(sums, s => Assert.Equal(3f, s));
        foreach (var groups in all) groups.Dispose();
    }

    [Fact]
    public async Task Without_ids_no_rank_asks_its_peers_anything()
    {
        var all = await JoinAll("device-none", _ => DeviceTransportJoin.None);
        Assert.All(all, g => Assert.All(g.Transports.Values, t => Assert.Equal("frames", t)));
        Assert.All(all, g => Assert.Equal(0, g.Along(GridAxis.Data)!.BytesSent));
        foreach (var groups in all) groups.Dispose();
    }
}
