using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Microsoft.Extensions.DependencyInjection;

namespace Elastic.Tests.Cluster;

/// <summary>A process that can reach a silo's data plane but holds no assignment cannot join a running job's group.</summary>
public sealed class DataPlaneIntrusionTests
{
    [Fact]
    public async Task A_connection_with_a_wrong_proof_is_refused_while_the_job_trains_on_to_its_fixed_layout_bits()
    {
        var spec = TestSpecs.Tiny(steps: 24) with { Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 1);
        var jobId = await cluster.Client.SubmitAsync(spec);
        var running = await cluster.Until(jobId, s => s.State == JobState.Running && s.CommittedStep >= 2);
        var plan = running.Plan!;
        var group = $"{jobId}/g{plan.Generation}/{plan.ToGrid().GroupName(GridAxis.Data, 0)}";
        var target = plan.Devices[0];
        var plane = cluster.Cluster.Silos.Single(s => s.SiloAddress.Equals(target.Silo)).SiloHost.Services.GetRequiredService<DataPlane>();

        // The impostor knows the group's name and ranks (they are no secret) but not the generation's secret.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            var colon = target.DataPlane.LastIndexOf(':');
            await socket.ConnectAsync(target.DataPlane[..colon], int.Parse(target.DataPlane[(colon + 1)..]));
            var name = Encoding.UTF8.GetBytes(group);
            var hello = new byte[16 + name.Length + GroupSecret.NonceBytes];
            BinaryPrimitives.WriteUInt32LittleEndian(hello, 0x50444C45);
            BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), 1);
            BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), 0);
            BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), name.Length);
            name.CopyTo(hello, 16);
            await socket.SendAsync(hello);
            var answer = new byte[GroupSecret.NonceBytes + GroupSecret.ProofBytes];
            for (var read = 0; read < answer.Length;) read += await socket.ReceiveAsync(answer.AsMemory(read)) is > 0 and var n ? n : throw new IOException("closed before the challenge");
            await socket.SendAsync(GroupSecret.NewNonce());
            Assert.Equal(0, await socket.ReceiveAsync(new byte[1]));
        }
        Assert.Equal(3, plane.Refusals);

        var status = await cluster.Finish(jobId);
        Assert.Equal(JobState.Completed, status.State);
        Assert.Equal(reference, status.FinalParameterDigest);
        Assert.Equal(0, status.Replans);
    }
}
