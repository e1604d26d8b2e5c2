using System.CommandLine;
using Elastic.Data;
using Elastic.Training.Engine;
using Elastic.Training.Sampling;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic sample --run DIR</c>: generates text from a model trained by <c>elastic train</c>.</summary>
internal static class SampleCommand
{
    public static Command Create()
    {
        var run = new Option<DirectoryInfo>("--run") { Description = "Run folder written by `elastic train`", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue", DefaultValueFactory = _ => "And God said" };
        var tokens = new Option<int>("--tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 300 };
        var temperature = new Option<double>("--temperature") { Description = "Softmax temperature (> 0)", DefaultValueFactory = _ => 0.8 };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all)", DefaultValueFactory = _ => 40 };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1UL };
        var command = new Command("sample", "Generate text from a trained model") { run, prompt, tokens, temperature, topK, seed };
        command.SetAction((parse, _) => CommandRunner.Run(parse, async console =>
        {
            var (t, temp, k) = (parse.GetValue(tokens), parse.GetValue(temperature), parse.GetValue(topK));
            if (t < 0) throw new CliException($"--tokens {t}: must not be negative");
            if (!(temp > 0)) throw new CliException($"--temperature {temp}: must be positive");
            if (k < 0) throw new CliException($"--top-k {k}: must not be negative");
            var folder = new RunFolder(parse.GetValue(run)!.FullName);
            var text = await DeviceWorker.RunOnce("device-0", 1, () =>
            {
                var (spec, model) = folder.Load();
                using (model) return TextSampler.Sample(model, Tokenizers.Create(spec.Data.Tokenizer), parse.GetValue(prompt)!, t, temp, k, parse.GetValue(seed));
            });
            console.Plain.WriteLine(text);
            return 0;
        }));
        return command;
    }
}
