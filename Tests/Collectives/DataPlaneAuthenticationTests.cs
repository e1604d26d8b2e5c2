using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Collectives;

/// <summary>
/// Two data planes link only when each proves it holds the group's secret: a peer with another secret, an impostor with a
/// made-up proof and one replaying a proof from another connection are refused, and the real group forms all the same.
/// </summary>
public sealed class DataPlaneAuthenticationTests : IAsyncLifetime
{
    private readonly List<string> _refusals = [];
    private DataPlane _a = null!, _b = null!;

    public Task InitializeAsync()
    {
        _a = new DataPlane(IPAddress.Loopback, refused: m => { lock (_refusals) _refusals.Add(m); });
        _b = new DataPlane(IPAddress.Loopback);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    [Fact]
    public async Task A_peer_with_another_secret_is_not_linked()
    {
        var endpoints = new[] { _a.Endpoint, _b.Endpoint };
        var listener = _a.JoinAsync("g1/data", 0, endpoints, GroupSecret.New(), TimeSpan.FromSeconds(2));
        var dialler = await Assert.ThrowsAsync<CollectiveException>(() => _b.JoinAsync("g1/data", 1, endpoints, GroupSecret.New(), TimeSpan.FromSeconds(2)));
        Assert.Contains("did not prove it holds the group's secret", dialler.Message);
        Assert.Contains("did not connect", (await Assert.ThrowsAsync<CollectiveException>(() => listener)).Message);
    }

    [Fact]
    public async Task An_impostor_with_a_made_up_or_replayed_proof_is_refused_and_reported_and_the_real_group_forms()
    {
        var secret = GroupSecret.New();
        var endpoints = new[] { _a.Endpoint, _b.Endpoint };
        var rank0 = _a.JoinAsync("job/g3/data", 0, endpoints, secret, TimeSpan.FromSeconds(20));

        // Made up: the impostor claims rank 1 but cannot compute the proof.
        using (var impostor = await Hello("job/g3/data", from: 1, to: 0, Nonce(1)))
        {
            await Read(impostor, GroupSecret.NonceBytes + GroupSecret.ProofBytes);
            await impostor.SendAsync(new byte[GroupSecret.ProofBytes]);
            Assert.Equal(0, await impostor.ReceiveAsync(new byte[1]));
        }
        // Replayed: a proof that was right for another connection's challenge is worth nothing on this one.
        byte[] recorded;
        using (var earlier = await Hello("job/g3/data", from: 1, to: 0, Nonce(2)))
        {
            var answer = await Read(earlier, GroupSecret.NonceBytes + GroupSecret.ProofBytes);
            recorded = secret.Prove("dialler", "job/g3/data", 1, 0, Nonce(2), answer.AsSpan(0, GroupSecret.NonceBytes));
        }
        using (var replay = await Hello("job/g3/data", from: 1, to: 0, Nonce(2)))
        {
            await Read(replay, GroupSecret.NonceBytes + GroupSecret.ProofBytes);
            await replay.SendAsync(recorded);
            Assert.Equal(0, await replay.ReceiveAsync(new byte[1]));
        }
        Assert.Equal(2, _a.Refusals);
        lock (_refusals)
        {
            Assert.All(_refusals, r => Assert.Contains("claiming rank 1 of job/g3/data", r));
            Assert.All(_refusals, r => Assert.Contains("proof does not match", r));
        }

        // The real rank 1 links, and the group works.
        using var rank1 = await _b.JoinAsync("job/g3/data", 1, endpoints, secret, TimeSpan.FromSeconds(20));
        using var linked = await rank0;
        var sums = await Task.WhenAll(new[] { linked, rank1 }.Select(c => Task.Factory.StartNew(() =>
        {
            var data = new double[] { c.Rank + 1, 10 * (c.Rank + 1) };
            return c.AllReduceSum(data);
        }, TaskCreationOptions.LongRunning)));
        Assert.All(sums, s => Assert.Equal([3.0, 30.0], s));
    }

    private static byte[] Nonce(byte fill) => Enumerable.Repeat(fill, GroupSecret.NonceBytes).ToArray();

    /// <summary>Dials plane A and sends a well-formed hello, as a dialling rank would.</summary>
    private async Task<Socket> Hello(string group, int from, int to, byte[] nonce)
    {
        var (host, port) = (_a.Endpoint.Split(':')[0], int.Parse(_a.Endpoint.Split(':')[1]));
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(host, port);
        var name = Encoding.UTF8.GetBytes(group);
        var hello = new byte[16 + name.Length + nonce.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, 0x50444C45);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), from);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), to);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), name.Length);
        name.CopyTo(hello, 16);
        nonce.CopyTo(hello, 16 + name.Length);
        await socket.SendAsync(hello);
        return socket;
    }

    private static async Task<byte[]> Read(Socket socket, int count)
    {
        var buffer = new byte[count];
        for (var read = 0; read < count;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read));
            Assert.True(n > 0, "the data plane closed the connection before answering the hello");
            read += n;
        }
        return buffer;
    }
}
