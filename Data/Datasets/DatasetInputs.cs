namespace Elastic.Data.Datasets;

/// <summary>
/// The documents of <c>elastic data prepare</c>'s inputs, in a fixed order: the inputs as given, a folder's files by ordinal
/// path (recursively); a <c>.jsonl</c> file is one document per record (its text field), any other file one document.
/// </summary>
public static class DatasetInputs
{
    public static IEnumerable<string> Documents(IReadOnlyList<string> inputs, string field) =>
        Files(inputs).SelectMany(file => file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)
            ? JsonLines.Texts(file, field)
            : [File.ReadAllText(file)]);

    /// <summary>Every input file, checked before any is read: a missing input is named.</summary>
    public static IReadOnlyList<string> Files(IReadOnlyList<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
            if (Directory.Exists(input))
                files.AddRange(Directory.GetFiles(input, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal));
            else if (File.Exists(input)) files.Add(input);
            else throw new FileNotFoundException($"{input}: no such file or folder");
        return files;
    }
}
