using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Scheduling;
using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>What a cluster refuses before a job starts: paths outside its roots, and jobs its devices cannot hold.</summary>
public sealed class AdmissionTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-admission-").FullName;

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public async Task The_memory_estimate_counts_exactly_the_parameters_the_model_has(bool tied, bool experts)
    {
        var spec = TestSpecs.Tiny() with
        {
            Model = TestSpecs.Tiny().Model with { TiedEmbeddings = tied, Ffn = 48, Moe = experts ? new MoeSpec { Experts = 4, Every = 2 } : null },
        };
        var actual = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return trainer.ParameterCount;
        });
        Assert.Equal(actual, MemoryEstimate.For(spec).Parameters);
    }

    [Fact]
    public void The_estimate_grows_with_the_micro_batch_and_shrinks_staging_with_more_replicas()
    {
        var spec = TestSpecs.Tiny();
        var wider = spec with { Batch = new BatchSpec { Global = 16, Micro = 8 } };
        Assert.True(MemoryEstimate.For(wider).ActivationBytes > MemoryEstimate.For(spec).ActivationBytes);
        Assert.True(MemoryEstimate.For(spec, dp: 4).GradientBytes < MemoryEstimate.For(spec, dp: 1).GradientBytes);
        Assert.Equal(12 * MemoryEstimate.For(spec).Parameters, MemoryEstimate.For(spec).ParameterBytes + MemoryEstimate.For(spec).OptimizerBytes);
    }

    [Fact]
    public void Zero_divides_the_moments_and_at_stage_3_the_parameters_and_recomputation_shrinks_the_activations()
    {
        var spec = TestSpecs.Tiny();
        MemoryEstimate At(int zero, string recompute = "none") =>
            MemoryEstimate.For(spec with { Parallel = new ParallelSpec { Zero = zero }, Runtime = new RuntimeSpec { Recompute = recompute } }, dp: 4);

        Assert.Equal((At(0).OptimizerBytes + 3) / 4, At(1).OptimizerBytes);
        Assert.Equal(At(0).ParameterBytes, At(2).ParameterBytes);
        Assert.True(At(3).ParameterBytes < At(0).ParameterBytes, $"{At(3)} against {At(0)}");
        Assert.True(At(0, "full").ActivationBytes < At(0, "selective").ActivationBytes);
        Assert.True(At(0, "selective").ActivationBytes < At(0).ActivationBytes);
        // ZeRO 3 runs every unit again in backward: it keeps what full recomputation keeps.
        Assert.Equal(At(0, "full").ActivationBytes, At(3).ActivationBytes);
        // One replica has nothing to shard over.
        Assert.Equal(MemoryEstimate.For(spec), MemoryEstimate.For(spec with { Parallel = new ParallelSpec { Zero = 3 } }));
    }

    [Fact]
    public void A_pipelined_job_is_estimated_per_stage_and_fits_where_the_whole_model_does_not()
    {
        var whole = TestSpecs.Tiny(global: 16, micro: 2) with { Model = new ModelSpec { Layers = 8, DModel = 512, Heads = 8, Vocab = 256, Context = 128 } };
        var pipelined = whole with { Parallel = new ParallelSpec { Pipeline = 4 } };
        var (one, four) = (MemoryEstimate.For(whole), MemoryEstimate.For(pipelined));

        // The heaviest stage holds two of the eight layers (plus embedding or head) and at most 4 micro-batches in flight.
        Assert.InRange(four.Parameters, one.Parameters / 4, one.Parameters / 2);
        Assert.True(four.TotalBytes < one.TotalBytes, $"{four} should be below {one}");
        var between = (one.TotalMiB + four.TotalMiB) / 2;
        Assert.Empty(JobAdmission.DeviceProblems(pipelined, between, threads: 8, "a device"));
        Assert.Single(JobAdmission.DeviceProblems(whole, between, threads: 8, "a device"));
    }

    [Fact]
    public void A_job_no_device_can_hold_is_refused_with_the_estimate_and_the_largest_device()
    {
        var inventory = new[] { Silo(memoryMiB: 1024, threads: 2), Silo(memoryMiB: 4096, threads: 1) };
        Assert.Empty(JobAdmission.DeviceProblems(TestSpecs.Tiny(), inventory));
        var big = TestSpecs.Tiny() with { Model = new ModelSpec { Layers = 24, DModel = 2048, Heads = 16, Context = 1024 } };
        var error = Assert.Single(JobAdmission.DeviceProblems(big, inventory));
        Assert.Equal("model", error.Field);
        Assert.Contains($"~{MemoryEstimate.For(big).TotalMiB} MiB per device", error.Message);
        Assert.Contains("the largest device of this cluster has 4096 MiB", error.Message);
        var threads = Assert.Single(JobAdmission.DeviceProblems(TestSpecs.Tiny() with { Runtime = new RuntimeSpec { ThreadsPerDevice = 10_000 } }, inventory));
        Assert.Equal("runtime.threadsPerDevice", threads.Field);
        Assert.Contains("at most 2 thread(s)", threads.Message);
        // No devices yet: nothing to compare with, the job waits for capacity instead.
        Assert.Empty(JobAdmission.DeviceProblems(big, []));
    }

    [Fact]
    public void Paths_must_lie_inside_a_root_after_dots_and_links_are_resolved()
    {
        var root = Directory.CreateDirectory(Path.Combine(_folder, "data")).FullName;
        var outside = Directory.CreateDirectory(Path.Combine(_folder, "secret")).FullName;
        File.WriteAllText(Path.Combine(outside, "key.txt"), "secret");
        File.WriteAllText(Path.Combine(root, "corpus.txt"), "text");
        Directory.CreateSymbolicLink(Path.Combine(root, "link"), outside);
        var roots = new PathRoots([root]);

        Assert.Null(roots.Problem(Path.Combine(root, "corpus.txt"), "Elastic:Jobs:DataRoots"));
        Assert.Null(roots.Problem(Path.Combine(root, "new", "model"), "Elastic:Jobs:DataRoots"));
        Assert.Null(roots.Problem(root, "Elastic:Jobs:DataRoots"));
        Assert.Contains("outside the folders", roots.Problem(Path.Combine(root, "..", "secret", "key.txt"), "Elastic:Jobs:DataRoots"));
        Assert.Contains("outside the folders", roots.Problem(Path.Combine(root, "link", "key.txt"), "Elastic:Jobs:DataRoots"));
        Assert.Contains("outside the folders", roots.Problem(root + "-sibling", "Elastic:Jobs:DataRoots"));
        Assert.Contains("absolute", roots.Problem("data/corpus.txt", "Elastic:Jobs:DataRoots"));
        Assert.Contains("Elastic:Jobs:OutputRoots", PathRoots.None.Problem(Path.Combine(root, "out"), "Elastic:Jobs:OutputRoots"));
    }

    [Fact]
    public void Admission_refuses_data_and_outputs_outside_the_roots_without_opening_them()
    {
        var root = Directory.CreateDirectory(Path.Combine(_folder, "allowed")).FullName;
        var options = new AdmissionOptions { DataRoots = new PathRoots([root]), OutputRoots = new PathRoots([root]) };
        // A file the silo could read, but outside the roots: refused by name, never read (it is not even a valid corpus).
        var spec = TestSpecs.Tiny() with
        {
            Data = new DataSpec { Source = "/etc/hostname" },
            Output = new OutputSpec { Directory = "/tmp/elsewhere" },
        };
        var errors = JobAdmission.Check(spec, options, []);
        Assert.Equal(["data.source", "output.directory"], errors.Select(e => e.Field));
        Assert.All(errors, e => Assert.Contains("outside the folders this cluster allows", e.Message));
        Assert.Empty(JobAdmission.Check(TestSpecs.Tiny() with { Output = new OutputSpec { Directory = Path.Combine(root, "model") } }, options, []));
    }

    [Fact]
    public void A_tensor_parallel_group_larger_than_every_silo_is_refused_with_the_largest_silo()
    {
        var spec = TestSpecs.Tiny() with { Parallel = new ParallelSpec { Tensor = 4 }, Devices = new DeviceSpec { Min = 4, Max = 8 } };

        var error = Assert.Single(JobAdmission.DeviceProblems(spec, [Silo(64_000, 4), Silo(64_000, 4)]));

        Assert.Equal(("parallel.tensor", "4"), (error.Field, error.Value));
        Assert.Contains("the largest silo of this cluster has 2", error.Message);
        Assert.Empty(JobAdmission.DeviceProblems(spec with { Parallel = new ParallelSpec { Tensor = 2 } }, [Silo(64_000, 4)]));
    }

    private static SiloInventory Silo(long memoryMiB, int threads) =>
        new(SiloAddress.New(System.Net.IPAddress.Loopback, 11111, 1), "silo", "cpu", 2, 0, memoryMiB, threads, "127.0.0.1:1");

    [Fact]
    public void A_job_whose_narrowest_layout_exceeds_its_tenants_quota_is_refused_naming_the_quota_and_where_it_is_set()
    {
        var quotas = new SchedulingOptions { TenantDevices = new Dictionary<string, int> { ["team-a"] = 2 }, DefaultTenantDevices = 8 };
        // Narrowest layout: dp 2 x tp 2 = 4 devices (devices.min counts dp x pp x tp).
        var spec = TestSpecs.Tiny(global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 3, Max = 8 }, Parallel = new ParallelSpec { Tensor = 2 } };

        var refused = Assert.Single(JobAdmission.QuotaProblems(spec, "team-a", quotas));
        Assert.Equal(("devices.min", "3"), (refused.Field, refused.Value));
        Assert.Equal("the narrowest layout needs 4 device(s), but tenant team-a may hold at most 2 (Elastic:Scheduling:TenantDevices:team-a)", refused.Message);
        Assert.Empty(JobAdmission.QuotaProblems(spec, "team-b", quotas));
        Assert.Contains("Elastic:Scheduling:DefaultTenantDevices", Assert.Single(JobAdmission.QuotaProblems(spec, "team-b", quotas with { DefaultTenantDevices = 3 })).Message);
        Assert.Empty(JobAdmission.QuotaProblems(spec, "team-b", new SchedulingOptions()));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
