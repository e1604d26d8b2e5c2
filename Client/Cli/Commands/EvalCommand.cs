using System.CommandLine;
using System.Globalization;
using Elastic.Data;
using Elastic.Training.Engine;
using Elastic.Training.Evaluation;
using Elastic.Training.Model;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic eval --model DIR --data FILE</c>: the mean next-token loss of a text under a model folder (one Elastic wrote, or
/// a Hugging Face GPT-2 or Llama), to 6 decimals: the check that an exported model means the same elsewhere.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder (config.json and model.safetensors)", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "Text file to score, tokenized with the model's tokenizer", Required = true };
        var command = new Command("eval", "Mean next-token loss of a text under a model") { model, data };
        command.SetAction((parse, _) => CommandRunner.Run(parse, async console =>
        {
            var (folder, file) = (parse.GetValue(model)!.FullName, parse.GetValue(data)!.FullName);
            if (!ModelFolder.Exists(folder)) throw new CliException($"--model {folder}: no model there (expected config.json and {ModelFolder.WeightsFile})");
            if (!File.Exists(file)) throw new CliException($"--data {file}: no such file");
            var text = await File.ReadAllTextAsync(file);
            var (loss, predictions, vocab) = await DeviceWorker.RunOnce("device-0", 1, () =>
            {
                var (spec, loaded) = ModelFolder.Load(folder);
                using (loaded)
                {
                    var tokens = Tokenizers.Create(spec.Data.Tokenizer).Encode(text);
                    if (tokens.Length < 2) throw new CliException($"--data {file}: {tokens.Length} token(s); a next-token loss needs at least 2");
                    if (tokens.FirstOrDefault(t => t >= spec.Model.Vocab, -1) is var beyond and >= 0)
                        throw new CliException($"--data {file}: token {beyond} is beyond the model's vocabulary of {spec.Model.Vocab}");
                    var (l, n) = TextLoss.Of(loaded, tokens);
                    return (l, n, spec.Model.Vocab);
                }
            });
            console.Plain.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss {loss:F6} over {predictions} predictions (vocabulary {vocab})"));
            return 0;
        }));
        return command;
    }
}
