using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Tests.Training;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Tests.Data;

/// <summary>
/// Supervised fine-tuning data (data.format sft): prompts are read and completions learned; a step's loss is the mean over the
/// completion targets of its whole batch, computed the same way on every layout; a bad record is named by file, line and field.
/// </summary>
public sealed class SupervisedDataTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-sft-").FullName;
    private static readonly ITokenizer Bpe = Tokenizers.Create(TokenizerTests.ShippedBpe);

    private static string Verses => Path.Combine(RepoPaths.Root, "examples", "finetune", "verses.jsonl");

    private static TrainingSpec Spec(int steps = 2) => TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
    {
        Model = TestSpecs.Tiny().Model with { Architecture = "llama", KvHeads = 2, Vocab = 2048 },
        Data = new DataSpec { Source = Verses, Format = "sft", Tokenizer = TokenizerTests.ShippedBpe, HeldOutFraction = 0.05 },
    };

    [Fact]
    public async Task Prompts_are_read_and_completions_with_their_end_of_text_are_learned()
    {
        var file = Path.Combine(_folder, "pairs.jsonl");
        await File.WriteAllLinesAsync(file,
        [
            """{"prompt": "In the beginning\nBook:", "completion": " Genesis"}""",
            "",
            """{"messages": [{"role": "user", "content": "Who created?"}, {"role": "assistant", "content": "God"}]}""",
        ]);

        var (tokens, trained) = JsonLines.Supervised(file, Bpe);

        var expected = new List<(int[] Ids, bool Trained)>
        {
            (Bpe.Encode("In the beginning\nBook:"), false), (Bpe.Encode(" Genesis"), true), ([2047], true),
            (Bpe.Encode("<|user|>\n"), false), (Bpe.Encode("Who created?\n"), false), (Bpe.Encode("<|assistant|>\n"), false), (Bpe.Encode("God\n"), true), ([2047], true),
        };
        Assert.Equal(expected.SelectMany(e => e.Ids), tokens);
        Assert.Equal(expected.SelectMany(e => e.Ids.Select(_ => e.Trained)), trained);
    }

    [Fact]
    public async Task A_record_without_its_field_or_a_line_that_is_not_json_is_named_with_its_line()
    {
        var file = Path.Combine(_folder, "bad.jsonl");
        await File.WriteAllLinesAsync(file, ["""{"prompt": "a", "completion": "b"}""", """{"prompt": "a"}"""]);
        var notJson = Path.Combine(_folder, "notjson.jsonl");
        await File.WriteAllLinesAsync(notJson, ["""{"text": "a"}""", "{oops"]);

        Assert.Equal($"{file}: line 2: completion: missing", Assert.Throws<InvalidDataException>(() => JsonLines.Supervised(file, Bpe)).Message);
        Assert.StartsWith($"{notJson}: line 2: not JSON", Assert.Throws<InvalidDataException>(() => JsonLines.Documents(notJson, "text", Bpe)).Message);
        Assert.Equal($"{file}: line 1: body: missing", Assert.Throws<InvalidDataException>(() => JsonLines.Documents(file, "body", Bpe)).Message);
        var error = Assert.Single(JobValidation.Validate(Spec() with { Model = Spec().Model with { Vocab = 256 }, Data = Spec().Data with { Tokenizer = "byte" } }));
        Assert.Equal("data.tokenizer", error.Field);
        Assert.Contains("no end-of-text token", error.Message);
    }

    [Fact]
    public async Task A_steps_loss_is_the_mean_over_its_batchs_completion_targets()
    {
        var spec = Spec(steps: 1) with { Model = Spec().Model with { Dropout = 0 } };
        var corpus = JobValidation.LoadValidated(spec);

        var (reported, independent) = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, corpus);
            // Before the step: the mean of -log p(target) over every completion target of the step's 16 samples, from whole logits.
            double sum = 0;
            long count = 0;
            foreach (var sample in Enumerable.Range(0, 8).SelectMany(m => trainer.SamplesOf(1, m)))
            {
                using var scope = NewDisposeScope();
                var (data, window) = corpus.TrainSample(sample);
                var ids = data.WindowTokens(window).ToArray();
                var logProbabilities = nn.functional.log_softmax(trainer.Model.forward(tensor(ids[..^1].Select(i => (long)i).ToArray(), [1, ids.Length - 1]))[0].to_type(ScalarType.Float64), 1);
                var trained = data.TrainedTargets(window).ToArray();
                for (var j = 0; j < trained.Length; j++)
                    if (trained[j])
                    {
                        sum -= logProbabilities[j, ids[j + 1]].item<double>();
                        count++;
                    }
            }
            return (trainer.Step(1).Loss, sum / count);
        });

        Assert.True(Math.Abs(reported - independent) < 1e-6, $"step loss {reported}, masked mean {independent}");
    }

    public static TheoryData<int, int, int> Layouts => new() { { 1, 1, 2 }, { 2, 2, 1 }, { 2, 1, 2 } };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Every_layout_takes_the_same_masked_loss_to_the_same_bits(int dp, int pp, int tp)
    {
        var spec = Spec() with { Parallel = new ParallelSpec { Pipeline = pp, Tensor = tp } };
        var corpus = JobValidation.LoadValidated(spec);
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, corpus);
            var steps = Enumerable.Range(1, spec.Steps).Select(s => trainer.Step(s)).ToList();
            return (steps, trainer.ParameterDigest());
        });

        await using var plane = new DataPlane(IPAddress.Loopback);
        var ranks = await EngineGrid.Run(plane, spec, ParallelGrid.Of(dp, pp, tp), sequenceParallel: true, (_, trainer) => EngineGrid.AllSteps(trainer), name: $"sft-{dp}x{pp}x{tp}", corpus: corpus);

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.steps, r.Steps);
            Assert.Equal(reference.Item2, r.Digest);
        });
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
