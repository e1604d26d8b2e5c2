using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Jobs;

/// <summary>Reads and writes specs as JSON (camelCase; unknown fields are errors, so typos never pass silently).</summary>
public static class SpecJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    /// <summary>Parses a spec; malformed JSON or an unknown field becomes a <see cref="SpecValidationException"/>.</summary>
    public static TrainingSpec Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainingSpec>(json, Options)
                ?? throw new SpecValidationException([new SpecError("$", "null", "the spec must be a JSON object")]);
        }
        catch (JsonException e)
        {
            var field = string.IsNullOrEmpty(e.Path) ? "$" : e.Path.TrimStart('$', '.');
            var where = e.LineNumber is { } line ? $" (line {line + 1})" : "";
            var message = e.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? "unknown field" + where
                : "is not valid here" + where + ": " + FirstSentence(e.Message);
            throw new SpecValidationException([new SpecError(field, null, message)]);
        }
    }

    /// <summary>Reads and parses a spec file; relative data and output paths are made absolute against the file's folder.</summary>
    public static TrainingSpec Read(string path)
    {
        if (!File.Exists(path))
            throw new SpecValidationException([new SpecError("spec", path, "file not found")]);
        var spec = Parse(File.ReadAllText(path));
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var source = spec.Data.Source;
        if (!string.IsNullOrWhiteSpace(source) && !source.StartsWith(DataSpec.BundledPrefix, StringComparison.Ordinal))
            spec = spec with { Data = spec.Data with { Source = Path.GetFullPath(source, folder) } };
        if (!string.IsNullOrWhiteSpace(spec.Output.Directory))
            spec = spec with { Output = new OutputSpec { Directory = Path.GetFullPath(spec.Output.Directory, folder) } };
        return spec;
    }

    public static string Serialize(TrainingSpec spec) => JsonSerializer.Serialize(spec, Options);

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }
}
