using System.Runtime.InteropServices;
using Elastic.Training.Collectives;
using Elastic.Training.Collectives.Nccl;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Tests.Collectives;

/// <summary>
/// The NCCL binding: what any machine can check (loading and refusing, addresses of tensors, ids, dtypes), and on a machine
/// with CUDA and NCCL the transfers themselves and a join whose peer never comes, aborted at its timeout.
/// </summary>
public sealed class NcclTests
{
    [Fact]
    public void A_path_that_does_not_load_gives_no_library_and_the_reason_names_the_path()
    {
        Assert.Null(NcclLibrary.TryLoad("/nonexistent/libnccl.so.2", out var why));
        Assert.Equal("NCCL path /nonexistent/libnccl.so.2 could not be loaded (no such file, or not a shared library for this machine)", why);
    }

    [Fact]
    public void A_library_that_is_not_nccl_is_refused_naming_the_entries_it_lacks()
    {
        Assert.Null(NcclLibrary.TryLoad("libc.so.6", out var why));
        Assert.StartsWith("libc.so.6 is not NCCL 2.14.0 or later: it lacks ncclGetVersion, ncclGetUniqueId, ncclCommInitRankConfig", why);
    }

    [Theory]
    [InlineData(22703, "2.27.3")]
    [InlineData(21400, "2.14.0")]
    [InlineData(2804, "2.8.4")]
    public void Version_codes_read_as_nccl_writes_them(int code, string text) => Assert.Equal(text, NcclLibrary.DescribeVersion(code));

    [Fact]
    public void The_address_of_a_view_is_where_its_first_element_lies_and_a_strided_view_is_refused()
    {
        using var values = arange(0, 24, dtype: ScalarType.Float32).view(4, 6);
        using var row = values[2];
        using var run = values.view(-1).narrow(0, 5, 7);
        Assert.Equal([12f, 13, 14, 15, 16, 17], Read(row, 6));
        Assert.Equal([5f, 6, 7, 8, 9, 10, 11], Read(run, 7));

        using var column = values.select(1, 2);
        Assert.Contains("not contiguous", Assert.Throws<ArgumentException>(() => TensorAddress.Of(column)).Message);
    }

    private static float[] Read(Tensor tensor, int count)
    {
        var read = new float[count];
        Marshal.Copy(TensorAddress.Of(tensor), read, 0, count);
        return read;
    }

    [Fact]
    public void A_unique_id_is_128_bytes_and_anything_else_is_refused_saying_so()
    {
        var bytes = Enumerable.Range(0, 128).Select(i => (byte)i).ToArray();
        Assert.Equal(NcclUniqueId.Parse(bytes), NcclUniqueId.Parse([.. bytes]));
        Assert.NotEqual(NcclUniqueId.Parse(bytes), NcclUniqueId.Parse(new byte[128]));
        Assert.Equal("an NCCL unique id has 128 bytes, not 127 (Parameter 'bytes')", Assert.Throws<ArgumentException>(() => NcclUniqueId.Parse(new byte[127])).Message);
    }

    [Fact]
    public void Dtypes_map_to_ncclDataType_values_and_one_nccl_cannot_carry_is_named()
    {
        Assert.Equal(9, (int)NcclTypes.Of(ScalarType.BFloat16));
        Assert.Equal(7, (int)NcclTypes.Of(ScalarType.Float32));
        Assert.Equal(4, (int)NcclTypes.Of(ScalarType.Int64));
        Assert.Contains("ComplexFloat32", Assert.Throws<ArgumentException>(() => NcclTypes.Of(ScalarType.ComplexFloat32)).Message);
    }

    [NcclFact]
    public void A_rank_sends_to_itself_and_gathers_from_itself_the_same_bits_on_the_device()
    {
        var (nccl, cuda) = NcclFactAttribute.Loaded();
        using var comm = NcclComm.Join(nccl, cuda, 0, nccl.NewUniqueId(), ranks: 1, rank: 0, TimeSpan.FromSeconds(30), "test");
        using var sent = randn(1 << 20, dtype: ScalarType.BFloat16, device: CUDA);
        using var received = empty_like(sent);
        comm.Exchange([(0, sent)], [(0, received)], TimeSpan.FromSeconds(30));
        Assert.True(sent.equal(received).item<bool>());

        using var gathered = empty_like(sent);
        comm.AllGather(sent, gathered, TimeSpan.FromSeconds(30));
        Assert.True(sent.equal(gathered).item<bool>());
    }

    [NcclFact]
    public void A_join_whose_peer_never_comes_is_aborted_at_its_timeout()
    {
        var (nccl, cuda) = NcclFactAttribute.Loaded();
        var began = System.Diagnostics.Stopwatch.StartNew();
        var failure = Assert.Throws<CollectiveException>(() => NcclComm.Join(nccl, cuda, 0, nccl.NewUniqueId(), ranks: 2, rank: 0, TimeSpan.FromSeconds(3), "test"));
        Assert.Contains("test: NCCL joining as rank 0 of 2 did not finish within 3 s", failure.Message);
        Assert.InRange(began.Elapsed.TotalSeconds, 3, 60);
    }

    private static readonly Device CUDA = new(TorchSharp.DeviceType.CUDA, 0);
}

/// <summary>A fact that needs a CUDA device and NCCL; skipped, saying which is missing, elsewhere.</summary>
public sealed class NcclFactAttribute : FactAttribute
{
    public NcclFactAttribute()
    {
        if (Why is { } why) Skip = why;
    }

    private static readonly Lazy<(NcclLibrary? Nccl, CudaRuntime? Cuda, string? Why)> Found = new(() =>
    {
        if (ComputeDevices.CudaCount == 0) return (null, null, "no CUDA device: the NCCL transfers need one");
        var nccl = NcclLibrary.TryLoad(null, out var noNccl);
        var cuda = CudaRuntime.TryLoad(out var noCuda);
        return (nccl, cuda, nccl is null ? noNccl : cuda is null ? noCuda : null);
    });

    private static string? Why => Found.Value.Why;

    public static (NcclLibrary Nccl, CudaRuntime Cuda) Loaded() => (Found.Value.Nccl!, Found.Value.Cuda!);
}
