using Elastic.Data;
using Elastic.Jobs;

namespace Elastic.Tests.Training;

public sealed class SpecValidationTests
{
    [Fact]
    public void Every_error_is_listed_with_its_field_and_value()
    {
        var spec = TestSpecs.Tiny() with
        {
            Steps = 0,
            Model = new ModelSpec { DModel = 100, Heads = 3, Dropout = 1.5, Vocab = 100 },
            Batch = new BatchSpec { Global = 96, Micro = 5 },
            Optimizer = new OptimizerSpec { Lr = -1, Beta2 = 1.0 },
            Data = new DataSpec { Source = "no/such/file.txt" },
        };
        var errors = JobValidation.Validate(spec);
        var byField = errors.ToDictionary(e => e.Field, e => e);
        Assert.Equal("0", byField["steps"].Value);
        Assert.Contains("not divisible by model.heads 3", byField["model.dModel"].Message);
        Assert.Equal("1.5", byField["model.dropout"].Value);
        Assert.Equal("100", byField["model.vocab"].Value);
        Assert.Contains("not divisible by batch.micro 5", byField["batch.global"].Message);
        Assert.Equal("96", byField["batch.global"].Value);
        Assert.Equal("-1", byField["optimizer.lr"].Value);
        Assert.Equal("1", byField["optimizer.beta2"].Value);
        Assert.Contains("absolute path", byField["data.source"].Message);
        var e = new SpecValidationException(errors);
        Assert.Contains("batch.global = 96: is not divisible by batch.micro 5", e.Message);
        Assert.Contains($"({errors.Count} errors)", e.Message);
    }

    [Fact]
    public void Every_mixture_of_experts_error_is_listed_with_its_numbers()
    {
        var spec = TestSpecs.Tiny() with
        {
            Model = TestSpecs.Tiny().Model with { Moe = new MoeSpec { Experts = 6, TopK = 7, Every = 3, CapacityFactor = 0, AuxLoss = -0.5, ZLoss = -1 } },
            Parallel = new ParallelSpec { Expert = 4 },
            Devices = new DeviceSpec { Max = 2 },
        };

        var errors = SpecValidator.Validate(spec);
        var byField = errors.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Last());
        var expert = string.Join("; ", errors.Where(e => e.Field == "parallel.expert").Select(e => e.Message));

        Assert.Contains("does not divide model.moe.experts 6", expert);
        Assert.Equal("7", byField["model.moe.topK"].Value);
        Assert.Contains("[1, model.moe.experts 6]", byField["model.moe.topK"].Message);
        Assert.Contains("[1, model.layers 2]", byField["model.moe.every"].Message);
        Assert.Equal("0", byField["model.moe.capacityFactor"].Value);
        Assert.Equal("-0.5", byField["model.moe.auxLoss"].Value);
        Assert.Equal("-1", byField["model.moe.zLoss"].Value);
        Assert.Contains("is more than the widest data-parallel width 2", expert);
        var fixedSpec = spec with { Model = spec.Model with { Moe = new MoeSpec { Experts = 8 } }, Devices = new DeviceSpec { Max = 4 } };
        Assert.Empty(SpecValidator.Validate(fixedSpec).Select(e => e.ToString()));
        Assert.Contains(SpecValidator.Validate(fixedSpec with { Parallel = fixedSpec.Parallel with { Zero = 3 } }), e => e.Field == "parallel.zero" && e.Message.Contains("parallel.expert 4"));
        Assert.Empty(SpecValidator.Validate(fixedSpec with { Parallel = fixedSpec.Parallel with { Zero = 2 } }));
    }

    [Fact]
    public void Every_architecture_error_is_listed_with_its_numbers()
    {
        var llama = TestSpecs.Tiny().Model with { Architecture = "llama", Heads = 12, DModel = 36, KvHeads = 5, RopeTheta = 0.5, NormEps = 0 };
        var errors = SpecValidator.Validate(TestSpecs.Tiny() with { Model = llama });
        var byField = errors.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Last());

        Assert.Contains("does not divide model.heads 12", byField["model.kvHeads"].Message);
        Assert.Contains("head dimension of 3", byField["model.heads"].Message);
        Assert.Equal("0.5", byField["model.ropeTheta"].Value);
        Assert.Equal("0", byField["model.normEps"].Value);
        Assert.Equal("transformer", SpecValidator.Validate(TestSpecs.Tiny() with { Model = TestSpecs.Tiny().Model with { Architecture = "transformer" } }).Single().Value);
        Assert.Contains("gpt2, llama", SpecValidator.Validate(TestSpecs.Tiny() with { Model = TestSpecs.Tiny().Model with { Architecture = "transformer" } }).Single().Message);
        Assert.Equal("model.kvHeads", SpecValidator.Validate(TestSpecs.Tiny() with { Model = TestSpecs.Tiny().Model with { KvHeads = 2 } }).Single().Field);
        // 12 heads over 6 key/value heads at S = 4: a shard would hold one and a half.
        var grouped = TestSpecs.Tiny().Model with { Architecture = "llama", Heads = 12, DModel = 48, KvHeads = 6, Ffn = 128, TensorShards = 4 };
        Assert.Contains("neither divides nor is a multiple of model.kvHeads 6", SpecValidator.Validate(TestSpecs.Tiny() with { Model = grouped }).Single().Message);
        Assert.Equal(2, (grouped with { TensorShards = 0 }).Shards);
        Assert.Empty(SpecValidator.Validate(TestSpecs.Tiny() with { Model = grouped with { TensorShards = 2 } }));
    }

    [Fact]
    public void The_example_specs_are_valid()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(RepoPaths.Root, "examples"), "*.json"))
        {
            // As `elastic train` reads them: a model imported with model.init.from takes its config's fields.
            var (spec, errors) = Elastic.Checkpoints.HuggingFace.ModelImport.Resolve(SpecJson.Read(file));
            Assert.Empty(errors.Concat(JobValidation.Validate(spec)).Select(e => $"{Path.GetFileName(file)}: {e}"));
        }
    }

    [Fact]
    public void A_relative_data_path_resolves_against_the_spec_file_and_must_exist()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-spec-").FullName;
        try
        {
            var file = Path.Combine(folder, "job.json");
            File.WriteAllText(file, """{ "data": { "source": "corpus/missing.txt" } }""");
            var spec = SpecJson.Read(file);
            Assert.Equal(Path.Combine(folder, "corpus", "missing.txt"), spec.Data.Source);
            var error = Assert.Single(JobValidation.Validate(spec));
            Assert.Equal(("data.source", spec.Data.Source, "file not found"), (error.Field, error.Value, error.Message));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Unknown_fields_are_rejected_by_name()
    {
        var e = Assert.Throws<SpecValidationException>(() => SpecJson.Parse("""{ "model": { "layers": 2, "dmodle": 64 } }"""));
        var error = Assert.Single(e.Errors);
        Assert.Equal("model.dmodle", error.Field);
        Assert.Contains("unknown field", error.Message);
    }

    [Fact]
    public void Malformed_json_is_rejected_with_its_location()
    {
        var e = Assert.Throws<SpecValidationException>(() => SpecJson.Parse("{ \"steps\": 3,, }"));
        var error = Assert.Single(e.Errors);
        Assert.Equal("spec", error.Field);
        Assert.Contains("line 1", error.Message);
    }
}
