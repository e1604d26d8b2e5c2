using System.Text.Json;
using System.Text.Json.Nodes;

namespace Elastic.Data;

/// <summary>
/// Datasets as JSON lines, one record per line: documents (a text field) for pre-training, and supervised fine-tuning pairs.
/// Records are tokenized in file order and packed into one stream, each ended by the tokenizer's end-of-text token. A record
/// without its field, or a line that is not a JSON object, fails with the file, line and field named.
/// </summary>
public static class JsonLines
{
    /// <summary>The chat template's header of each message: the role on a line of its own.</summary>
    private static string RoleHeader(string role) => $"<|{role}|>\n";

    /// <summary>The documents' text (<paramref name="field"/> of each record), each followed by end-of-text (a blank line without one).</summary>
    public static int[] Documents(string path, string field, ITokenizer tokenizer)
    {
        var tokens = new List<int>();
        foreach (var text in Texts(path, field))
        {
            tokens.AddRange(tokenizer.Encode(text));
            if (tokenizer.EndOfText is { } end) tokens.Add(end);
            else tokens.AddRange(tokenizer.Encode("\n\n"));
        }
        return [.. tokens];
    }

    /// <summary>The text of each record's <paramref name="field"/>, in file order.</summary>
    public static IEnumerable<string> Texts(string path, string field) => Records(path).Select(r => Text(r.Record, field, path, r.Line));

    /// <summary>
    /// Supervised pairs: a record is {"prompt", "completion"} or {"messages": [{"role", "content"}, ...]} (roles system, user,
    /// assistant; each message is its role's header then its content and a newline). Trained marks the targets the loss is taken
    /// over: the completion or the assistant's messages, and the end-of-text that closes the record.
    /// </summary>
    public static (int[] Tokens, bool[] Trained) Supervised(string path, ITokenizer tokenizer)
    {
        if (tokenizer.EndOfText is not { } end)
            throw new InvalidDataException($"tokenizer '{tokenizer.Name}' has no end-of-text token to end each example (supervised data needs one)");
        var (tokens, trained) = (new List<int>(), new List<bool>());
        void Add(string text, bool train)
        {
            var ids = tokenizer.Encode(text);
            tokens.AddRange(ids);
            trained.AddRange(Enumerable.Repeat(train, ids.Length));
        }
        foreach (var (record, line) in Records(path))
        {
            if (record["messages"] is JsonArray messages)
                foreach (var (message, i) in messages.Select((m, i) => (m as JsonObject, i)))
                {
                    var role = message is null ? null : Text(message, "role", path, line, $"messages[{i}].");
                    if (role is not ("system" or "user" or "assistant"))
                        throw new InvalidDataException($"{path}: line {line}: messages[{i}].role: '{role}' (system, user or assistant)");
                    Add(RoleHeader(role), false);
                    Add(Text(message!, "content", path, line, $"messages[{i}].") + "\n", role == "assistant");
                }
            else
            {
                Add(Text(record, "prompt", path, line), false);
                Add(Text(record, "completion", path, line), true);
            }
            tokens.Add(end);
            trained.Add(true);
        }
        return ([.. tokens], [.. trained]);
    }

    private static IEnumerable<(JsonObject Record, int Line)> Records(string path)
    {
        var line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}: line {line}: not JSON ({e.Message.Split(" Path:")[0]})");
            }
            yield return (node as JsonObject ?? throw new InvalidDataException($"{path}: line {line}: not a JSON object"), line);
        }
    }

    private static string Text(JsonObject record, string field, string path, int line, string prefix = "") =>
        record[field] is JsonValue value && value.TryGetValue<string>(out var text)
            ? text
            : throw new InvalidDataException($"{path}: line {line}: {prefix}{field}: {(record[field] is null ? "missing" : "not a string")}");
}
