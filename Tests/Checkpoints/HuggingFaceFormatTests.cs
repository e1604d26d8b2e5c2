using System.Globalization;
using System.Text.Json.Nodes;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.HuggingFace;
using Elastic.Cli;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Training.Engine;
using Elastic.Training.Model;

namespace Elastic.Tests.Checkpoints;

/// <summary>
/// Models in Hugging Face's format: what Elastic writes means the same to an independent implementation (a numpy forward pass
/// written from the published architectures gives the loss `elastic eval` prints), reads back to the same bytes, and bad
/// folders are refused with the file and field named.
/// </summary>
public sealed class HuggingFaceFormatTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-hf-").FullName;

    /// <param name="experts">With 1 or more, every layer a dropless MoE layer of that many experts, top 2 (a Llama's is Mixtral).</param>
    private static TrainingSpec Spec(string architecture, int kvHeads, bool tied, int experts = 0) => TestSpecs.Tiny(steps: 3) with
    {
        Model = TestSpecs.Tiny().Model with
        {
            Architecture = architecture, KvHeads = kvHeads, TiedEmbeddings = tied, Moe = experts > 0 ? new MoeSpec { Experts = experts, TopK = 2, Every = 1 } : null,
        },
    };

    private async Task<string> Trained(TrainingSpec spec, string name)
    {
        var folder = Path.Combine(_folder, name);
        await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            ModelFolder.Save(folder, spec, trainer);
            return 0;
        });
        return folder;
    }

    [Theory]
    [InlineData("gpt2", 0, true, false, 0, "float32")]
    [InlineData("gpt2", 0, false, true, 0, "float32")]
    [InlineData("llama", 2, false, true, 0, "float32")]
    [InlineData("llama", 1, true, false, 0, "float32")]
    [InlineData("llama", 2, false, false, 4, "float32")]
    [InlineData("llama", 2, true, false, 0, "bfloat16")]
    [InlineData("gpt2", 0, true, false, 0, "float16")]
    public async Task Elastic_eval_and_an_independent_numpy_forward_pass_give_the_same_loss(string architecture, int kvHeads, bool tied, bool bpe, int experts, string dtype)
    {
        var spec = Spec(architecture, kvHeads, tied, experts) with { Output = new OutputSpec { Dtype = dtype } };
        if (bpe) spec = spec with { Model = spec.Model with { Vocab = 2048 }, Data = new DataSpec { Tokenizer = Elastic.Tests.Data.TokenizerTests.ShippedBpe } };
        var model = await Trained(spec, $"{architecture}-{kvHeads}-{tied}-{bpe}-{experts}-{dtype}");
        // Over a context of 32: several whole windows and a short one.
        var text = CorpusSource.ReadBundledText("kjv")[1000..(bpe ? 1400 : 1121)];
        var (textFile, idsFile) = (Path.Combine(_folder, "text.txt"), Path.Combine(_folder, "ids.txt"));
        await File.WriteAllTextAsync(textFile, text);
        // The reference's ids come from outside Elastic too: UTF-8 bytes, or the independent Python BPE.
        var ids = bpe
            ? await Elastic.Tests.Data.TokenizerTests.Python(Path.Combine(RepoPaths.Root, "examples", "tokenizer", "bpe.py"), "encode", Elastic.Tests.Data.TokenizerTests.ShippedBpe, textFile)
            : string.Join(' ', System.Text.Encoding.UTF8.GetBytes(text));
        await File.WriteAllTextAsync(idsFile, ids);

        var output = new StringWriter();
        Assert.Equal(0, await ElasticCommandLine.Create().Parse(["eval", "--model", model, "--data", textFile]).InvokeAsync(new() { Output = output, Error = output }));
        var elastic = double.Parse(output.ToString().Split(' ')[1], CultureInfo.InvariantCulture);
        var reference = double.Parse(await Elastic.Tests.Data.TokenizerTests.Python(Path.Combine(RepoPaths.Root, "Tests", "Reference", "reference_loss.py"), model, idsFile), CultureInfo.InvariantCulture);

        Assert.Contains($"over {ids.Split(' ').Length - 1} predictions", output.ToString());
        Assert.Equal(bpe, File.Exists(Path.Combine(model, "tokenizer.json")));
        Assert.True(Math.Abs(elastic - reference) < 1e-4, $"elastic eval {elastic}, numpy reference {reference}");
    }

    [Theory]
    [InlineData("gpt2", 0, true, "float32", 0)]
    [InlineData("llama", 2, false, "float32", 0)]
    [InlineData("llama", 2, false, "bfloat16", 0)]
    [InlineData("gpt2", 0, false, "float16", 0)]
    [InlineData("llama", 2, false, "bfloat16", 4)]
    public async Task An_import_followed_by_an_export_gives_back_every_tensor_byte_for_byte(string architecture, int kvHeads, bool tied, string dtype, int experts)
    {
        var spec = Spec(architecture, kvHeads, tied, experts) with { Output = new OutputSpec { Dtype = dtype } };
        var first = await Trained(spec, "first");

        var (model, parameters) = HfModelFolder.Read(first, new ModelSpec());
        var second = Path.Combine(_folder, "second");
        HfModelFolder.Write(second, model, parameters.Select(p => new HfModelFolder.Tensor(p.Key, ParameterLayout.Of(model).Single(l => l.Name == p.Key).Shape, p.Value)).ToList(),
            dtype: dtype);

        var before = Tensors(first);
        var after = Tensors(second);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before, b => Assert.True(b.Value.Span.SequenceEqual(after[b.Key].Span), b.Key));
        Assert.All(Safetensors.Read(File.ReadAllBytes(Path.Combine(first, HfModelFolder.WeightsFile))), e => Assert.Equal(WeightDtype.Code(dtype), e.DType));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(first, HfConfig.FileName)))!;
        Assert.Equal(dtype, (string?)config["torch_dtype"]);
        if (experts > 0)
        {
            // Mixtral's config and names: what MixtralForCausalLM loads.
            Assert.Equal(("mixtral", experts, 2), ((string?)config["model_type"], (int?)config["num_local_experts"], (int?)config["num_experts_per_tok"]));
            Assert.Contains($"model.layers.1.block_sparse_moe.experts.{experts - 1}.w3.weight", before.Keys);
        }
        Assert.Equal(spec.Model with { Dropout = 0, Ffn = spec.Model.FfnSize, KvHeads = model.KvHeads, TensorShards = 0 }, model with { Dropout = 0 });
    }

    [Fact]
    public async Task A_folder_with_missing_extra_or_misshapen_tensors_is_refused_naming_each()
    {
        var folder = await Trained(Spec("llama", 2, false), "damaged");
        var entries = Safetensors.Read(await File.ReadAllBytesAsync(Path.Combine(folder, HfModelFolder.WeightsFile)))
            .Where(e => e.Name != "model.layers.1.self_attn.k_proj.weight")
            .Select(e => e.Name == "model.norm.weight" ? e with { Shape = [16, 2] } : e)
            .Append(new Safetensors.Entry("model.layers.9.mlp.up_proj.weight", "F32", [2], new byte[8]))
            .ToList();
        await File.WriteAllBytesAsync(Path.Combine(folder, HfModelFolder.WeightsFile), Safetensors.Build(entries).File);

        var error = Assert.Throws<InvalidDataException>(() => HfModelFolder.Read(folder, new ModelSpec())).Message;

        Assert.Contains("model.layers.1.self_attn.k_proj.weight: missing", error);
        Assert.Contains("model.norm.weight: shape [16, 2], expected [32]", error);
        Assert.Contains("model.layers.9.mlp.up_proj.weight: unexpected", error);
    }

    [Fact]
    public async Task A_config_of_another_architecture_or_without_its_fields_is_refused_naming_the_file_and_fields()
    {
        var folder = await Trained(Spec("gpt2", 0, true), "config");
        var configPath = Path.Combine(folder, HfConfig.FileName);

        await File.WriteAllTextAsync(configPath, """{ "model_type": "bert", "hidden_size": 32 }""");
        Assert.Contains($"{configPath}: model_type: 'bert' is not an architecture Elastic trains", Assert.Throws<InvalidDataException>(() => HfModelFolder.Read(folder, new ModelSpec())).Message);

        await File.WriteAllTextAsync(configPath, """{ "model_type": "llama", "hidden_size": 32, "num_attention_heads": "four", "hidden_act": "gelu", "attention_bias": true }""");
        var error = Assert.Throws<InvalidDataException>(() => HfModelFolder.Read(folder, new ModelSpec())).Message;
        foreach (var expected in new[] { "num_hidden_layers: missing", "num_attention_heads: '\"four\"' is not an integer", "hidden_act: 'gelu'", "attention_bias: true", "vocab_size: missing" })
            Assert.Contains(expected, error);

        await File.WriteAllTextAsync(configPath, "not json");
        Assert.Contains("not JSON", Assert.Throws<InvalidDataException>(() => HfModelFolder.Read(folder, new ModelSpec())).Message);
    }

    [Fact]
    public void A_spec_field_that_contradicts_the_config_is_named_with_both_values()
    {
        var config = new ModelSpec { Architecture = "llama", Layers = 12, DModel = 768, Heads = 12 };
        var errors = HfConfig.Contradictions(new ModelSpec { Layers = 6, DModel = 768 }, config, "init/config.json").ToList();

        var error = Assert.Single(errors);
        Assert.Equal("model.layers", error.Field);
        Assert.Equal("6", error.Value);
        Assert.Contains("contradicts init/config.json, which gives 12", error.Message);
    }

    private static Dictionary<string, ReadOnlyMemory<byte>> Tensors(string folder) =>
        Safetensors.Read(File.ReadAllBytes(Path.Combine(folder, HfModelFolder.WeightsFile))).ToDictionary(e => e.Name, e => e.Data);

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
