using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Jobs;

/// <summary>
/// Reads and writes specs as JSON (camelCase). Reading is strict: <see cref="SpecShape"/> refuses unknown fields,
/// fields given twice, nulls, numbers written as strings and wrong types, all at once, before anything is built.
/// </summary>
public static class SpecJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowDuplicateProperties = false,
        // Numbers are numbers (the web default also reads "3" as 3). NaN and infinities are written as the strings
        // "NaN" and "Infinity" rather than failing: a diverged loss must still reach a report or a status.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Parses a spec; anything but a well-formed spec object becomes a <see cref="SpecValidationException"/> naming the fields.</summary>
    public static TrainingSpec Parse(string json)
    {
        if (HoldsNoValue(json))
            throw Invalid("spec", null, "is empty; expected a JSON object such as { \"name\": \"demo\", \"steps\": 100 }");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException e)
        {
            throw Invalid("spec", null, $"is not valid JSON{Where(e)}: {FirstSentence(e.Message)}");
        }
        using (document)
        {
            var errors = SpecShape.Check(document.RootElement);
            if (errors.Count > 0) throw new SpecValidationException(errors);
            try
            {
                return document.RootElement.Deserialize<TrainingSpec>(Options)!;
            }
            catch (JsonException e)
            {
                // The shape check should have caught it; say where anyway, never throw a raw JsonException.
                var field = e.Path is null or "$" ? "spec" : e.Path.TrimStart('$', '.');
                throw Invalid(field, null, $"is not valid here{Where(e)}: {FirstSentence(e.Message)}");
            }
        }
    }

    /// <summary>Reads and parses a spec file; relative data, tokenizer, starting-weight and output paths are made absolute against the file's folder.</summary>
    public static TrainingSpec Read(string path)
    {
        if (!File.Exists(path))
            throw new SpecValidationException([new SpecError("spec", path, "file not found")]);
        var spec = Parse(File.ReadAllText(path));
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        // A file's path is made absolute; a bundled corpus and a blob address are left as they are.
        string Local(string source) => string.IsNullOrWhiteSpace(source) || source.StartsWith(DataSpec.BundledPrefix, StringComparison.Ordinal) || source.Contains("://", StringComparison.Ordinal)
            ? source : Path.GetFullPath(source, folder);
        if (spec.Data.Source is { } source) spec = spec with { Data = spec.Data with { Source = Local(source) } };
        if (spec.Data.Mixture is { } mixture)
            spec = spec with { Data = spec.Data with { Mixture = mixture.Select(s => s with { Source = Local(s.Source) }).ToList() } };
        if (SpecValidator.IsTokenizerFile(spec.Data.Tokenizer ?? ""))
            spec = spec with { Data = spec.Data with { Tokenizer = Path.GetFullPath(spec.Data.Tokenizer!, folder) } };
        if (spec.Model.Init?.From is { } from && !string.IsNullOrWhiteSpace(from))
            spec = spec with { Model = spec.Model with { Init = new ModelInitSpec { From = Local(from) } } };
        if (!string.IsNullOrWhiteSpace(spec.Output.Directory))
            spec = spec with { Output = new OutputSpec { Directory = Path.GetFullPath(spec.Output.Directory, folder) } };
        return spec;
    }

    public static string Serialize(TrainingSpec spec) => JsonSerializer.Serialize(spec, Options);

    /// <summary>True for a document of nothing but whitespace and comments.</summary>
    private static bool HoldsNoValue(string json)
    {
        var utf8 = Encoding.UTF8.GetBytes(json);
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        try
        {
            return !reader.Read();
        }
        catch (JsonException)
        {
            // The reader refuses a document without tokens only after consuming all of it.
            return reader.TokenType == JsonTokenType.None && reader.BytesConsumed == utf8.Length;
        }
    }

    private static SpecValidationException Invalid(string field, string? value, string message) => new([new SpecError(field, value, message)]);

    private static string Where(JsonException e) =>
        e.LineNumber is { } line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }
}
