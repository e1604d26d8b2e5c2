using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Tests.Training.Llama;

/// <summary>
/// The Llama architecture keeps the layout contract as GPT-2 does: every tensor-parallel degree (with and without sequence
/// parallelism), a pipeline and ZeRO 3 end with the one-device digest and report the same losses and gradient norms, whether
/// the key/value heads are split over the virtual shards (kvHeads 4 = S) or read from a replica (grouped 2, multi-query 1).
/// </summary>
public sealed class LlamaTrainingTests
{
    // d 32 over 4 heads of 8, SwiGLU width 128, S = 4; four layers, eight micro-batches of 2.
    internal static TrainingSpec Spec(int kvHeads, int steps = 3, bool tied = true) =>
        TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Architecture = "llama", Layers = 4, KvHeads = kvHeads, TiedEmbeddings = tied },
        };

    public static TheoryData<int, int, int, int, bool, int> Layouts => new()
    {
        // kvHeads, dp, pp, tp, sequence parallel, zero
        { 4, 1, 1, 2, true, 0 },
        { 4, 1, 1, 4, true, 0 },
        { 2, 1, 1, 2, true, 0 },
        { 2, 1, 1, 4, false, 0 },
        { 1, 1, 1, 4, true, 0 },
        { 1, 2, 2, 1, true, 0 },
        { 2, 2, 1, 1, true, 3 },
        { 1, 2, 1, 2, true, 3 },
    };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Every_layout_ends_with_the_one_device_digest_and_the_same_losses(int kvHeads, int dp, int pp, int tp, bool sequenceParallel, int zero)
    {
        var spec = Spec(kvHeads) with { Parallel = new ParallelSpec { Pipeline = pp, Tensor = tp, Zero = zero } };
        Assert.Equal(4, spec.Model.Shards);

        await AssertEveryRankMatchesOneDevice(spec, ParallelGrid.Of(dp, pp, tp), sequenceParallel, $"llama-kv{kvHeads}-{dp}x{pp}x{tp}-z{zero}");
    }

    private static async Task AssertEveryRankMatchesOneDevice(TrainingSpec spec, ParallelGrid grid, bool sequenceParallel, string name)
    {
        var reference = await TestSpecs.OneDeviceSteps(spec);

        await using var plane = new DataPlane(IPAddress.Loopback);
        var ranks = await EngineGrid.Run(plane, spec, grid, sequenceParallel, (_, trainer) => EngineGrid.AllSteps(trainer), name: name);

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Digest, r.Digest);
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Fact]
    public async Task An_untied_head_on_a_pipeline_with_tensor_parallelism_keeps_the_one_device_bits()
    {
        var spec = Spec(kvHeads: 2, tied: false) with { Parallel = new ParallelSpec { Pipeline = 2, Tensor = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);

        await using var plane = new DataPlane(IPAddress.Loopback);
        var digests = await EngineGrid.Run(plane, spec, ParallelGrid.Of(1, 2, 2), sequenceParallel: true, (_, trainer) => EngineGrid.AllSteps(trainer).Digest,
            name: "llama-untied");

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    public static TheoryData<int, int, int, int> MixtureLayouts => new()
    {
        // dp, pp, tp, ep
        { 2, 1, 1, 2 },
        { 4, 1, 1, 4 },
        { 2, 1, 2, 2 },
        { 2, 2, 1, 1 },
    };

    [Theory, MemberData(nameof(MixtureLayouts))]
    public async Task A_llama_with_swiglu_experts_keeps_the_one_device_bits_on_every_layout(int dp, int pp, int tp, int ep)
    {
        // Mixtral's layers: every second one 4 SwiGLU experts, top 2, dropless; grouped key/value heads.
        var spec = Spec(kvHeads: 2) with
        {
            Model = Spec(2).Model with { Moe = new MoeSpec { Experts = 4, TopK = 2, Every = 2 } },
            Parallel = new ParallelSpec { Pipeline = pp, Tensor = tp, Expert = ep },
        };

        await AssertEveryRankMatchesOneDevice(spec, ParallelGrid.Of(dp, pp, tp, ep), sequenceParallel: true, $"llama-moe-{dp}x{pp}x{tp}-ep{ep}");
    }

    [Fact]
    public async Task A_llama_learns_and_is_not_the_gpt2_of_the_same_sizes()
    {
        var llama = Spec(kvHeads: 2, steps: 12) with { Model = Spec(2).Model with { Dropout = 0 } };
        var gpt2 = llama with { Model = llama.Model with { Architecture = "gpt2", KvHeads = 0 } };

        var steps = (await TestSpecs.OneDeviceSteps(llama)).Steps;

        Assert.True(steps[^1].Loss < steps[0].Loss - 0.5, $"loss went from {steps[0].Loss} to {steps[^1].Loss}");
        Assert.NotEqual(await TestSpecs.ReferenceDigest(gpt2), await TestSpecs.ReferenceDigest(llama));
    }
}
