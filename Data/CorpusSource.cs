using System.IO.Compression;
using Elastic.Jobs;

namespace Elastic.Data;

/// <summary>Where a corpus comes from: a text bundled with the engine, a text file, or a file of uint16 token ids.</summary>
public static class CorpusSource
{
    private const string BundledPrefix = DataSpec.BundledPrefix;

    /// <summary>Texts shipped inside this assembly (see Data/Corpus for their licences).</summary>
    public static IReadOnlyList<string> BundledNames { get; } = ["kjv"];

    /// <summary>Returns why <paramref name="source"/> cannot be read, or null when it can.</summary>
    public static string? Check(string source, string format)
    {
        if (string.IsNullOrWhiteSpace(source)) return "must name a bundled corpus or a file";
        if (source.StartsWith(BundledPrefix, StringComparison.Ordinal))
        {
            var name = source[BundledPrefix.Length..];
            if (!BundledNames.Contains(name)) return $"unknown bundled corpus; known: {string.Join(", ", BundledNames.Select(n => BundledPrefix + n))}";
            return format == "text" ? null : "bundled corpora are text; use data.format 'text'";
        }
        if (!Path.IsPathFullyQualified(source)) return "a file source must be an absolute path here";
        if (!File.Exists(source)) return "file not found";
        if (format == "uint16" && new FileInfo(source).Length % 2 != 0) return "a uint16 token file must have an even number of bytes";
        return null;
    }

    /// <summary>Reads the whole corpus as token ids. Token ids not below <paramref name="vocab"/> are rejected.</summary>
    public static ushort[] ReadTokens(string source, string format, ITokenizer tokenizer, int vocab)
    {
        ushort[] tokens;
        if (source.StartsWith(BundledPrefix, StringComparison.Ordinal))
            tokens = tokenizer.Encode(ReadBundledText(source[BundledPrefix.Length..]));
        else if (format == "text")
            tokens = tokenizer.Encode(File.ReadAllText(source));
        else
        {
            var bytes = File.ReadAllBytes(source);
            tokens = new ushort[bytes.Length / 2];
            for (var i = 0; i < tokens.Length; i++) tokens[i] = (ushort)(bytes[2 * i] | bytes[2 * i + 1] << 8);
        }
        for (var i = 0; i < tokens.Length; i++)
            if (tokens[i] >= vocab)
                throw new InvalidDataException($"token id {tokens[i]} at position {i} is not below model.vocab {vocab}");
        return tokens;
    }

    public static string ReadBundledText(string name)
    {
        using var stream = typeof(CorpusSource).Assembly.GetManifestResourceStream($"Elastic.Data.Corpus.{name}.txt.gz")
            ?? throw new ArgumentException($"unknown bundled corpus '{name}'", nameof(name));
        using var gzip = new GZipStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        return reader.ReadToEnd();
    }
}
