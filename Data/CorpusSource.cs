using System.IO.Compression;
using Elastic.Checkpoints.Stores;
using Elastic.Data.Datasets;
using Elastic.Jobs;

namespace Elastic.Data;

/// <summary>Where a corpus comes from: a text bundled with the engine, a text file, or a file of uint16 or uint32 token ids.</summary>
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
            return format == "text" ? null : $"bundled corpora are text; data.format '{format}' needs a file";
        }
        if (StoreLocation.IsBlob(source)) return null;
        if (!Path.IsPathFullyQualified(source)) return "a file source must be an absolute path here";
        if (Directory.Exists(source))
            return File.Exists(Path.Combine(source, DatasetManifest.FileName)) ? null : $"a folder source must hold a dataset ({DatasetManifest.FileName}; `elastic data prepare` writes one)";
        if (!File.Exists(source)) return "file not found";
        if (IdWidth(format) is { } width && new FileInfo(source).Length % width != 0) return $"a {format} token file must have a multiple of {width} bytes";
        return null;
    }

    /// <summary>
    /// The corpus's token ids and, for supervised data, which targets the loss is taken over (null: all). Files and bundled texts
    /// are read whole now, their ids not below <paramref name="vocab"/> checked; a prepared dataset is opened (its manifest read)
    /// and read as samples need it.
    /// </summary>
    public static (ITokenSource Tokens, bool[]? Trained) Read(MixtureSource data, ITokenizer tokenizer, int vocab)
    {
        var (source, format) = (data.Source, data.Format);
        if (DatasetTokens.IsDataset(source))
            return (OpenDataset(source, tokenizer, vocab), null);
        int[] tokens;
        bool[]? trained = null;
        if (source.StartsWith(BundledPrefix, StringComparison.Ordinal))
            tokens = tokenizer.Encode(ReadBundledText(source[BundledPrefix.Length..]));
        else if (format == "text")
            tokens = tokenizer.Encode(File.ReadAllText(source));
        else if (format == "jsonl")
            tokens = JsonLines.Documents(source, data.Field, tokenizer);
        else if (format == "sft")
            (tokens, trained) = JsonLines.Supervised(source, tokenizer);
        else
            tokens = ReadIds(File.ReadAllBytes(source), IdWidth(format)!.Value);
        for (var i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= vocab)
                throw new InvalidDataException($"token id {tokens[i]} at position {i} is not below model.vocab {vocab}");
        return (new InMemoryTokens(tokens), trained);
    }

    /// <summary>A prepared dataset, which its tokenizer must be the job's and its vocabulary within the model's.</summary>
    private static DatasetTokens OpenDataset(string source, ITokenizer tokenizer, int vocab)
    {
        var dataset = DatasetTokens.OpenAsync(StoreLocation.Open(source), vocab).GetAwaiter().GetResult();
        var manifest = dataset.Manifest;
        if (manifest.Tokenizer != Tokenizers.Recorded(tokenizer.Name))
            throw new InvalidDataException($"tokenizer '{tokenizer.Name}' is not the dataset's: {source} was prepared with '{manifest.Tokenizer}'");
        if (manifest.Vocab > vocab)
            throw new InvalidDataException($"its vocabulary ({manifest.Vocab}, tokenizer '{manifest.Tokenizer}') is larger than model.vocab {vocab}");
        return dataset;
    }

    /// <summary>Bytes per id of a pre-tokenized format; null for text.</summary>
    private static int? IdWidth(string format) => format switch { "uint16" => 2, "uint32" => 4, _ => null };

    /// <summary>Little-endian ids; a uint32 above int.MaxValue reads as negative and fails the vocabulary check.</summary>
    internal static int[] ReadIds(ReadOnlySpan<byte> bytes, int width)
    {
        var ids = new int[bytes.Length / width];
        for (var i = 0; i < ids.Length; i++)
            ids[i] = width == 2 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..])
                : System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
        return ids;
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
