using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace Elastic.Checkpoints.Format;

/// <summary>
/// The safetensors file format: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and data offsets, then the raw bytes. Readable by any safetensors reader.
/// </summary>
public static class Safetensors
{
    public sealed record Entry(string Name, string DType, long[] Shape, ReadOnlyMemory<byte> Data);

    /// <summary>Builds a file; returns its bytes and, per entry, the absolute byte offset of its data.</summary>
    public static (byte[] File, long[] DataOffsets) Build(IReadOnlyList<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 }) header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        long position = 0;
        foreach (var e in entries)
        {
            header[e.Name] = new JsonObject
            {
                ["dtype"] = e.DType,
                ["shape"] = new JsonArray(e.Shape.Select(s => (JsonNode?)s).ToArray()),
                ["data_offsets"] = new JsonArray(position, position + e.Data.Length),
            };
            position += e.Data.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        var file = new byte[8 + padded + position];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)padded);
        json.CopyTo(file, 8);
        file.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        var offsets = new long[entries.Count];
        long at = 8 + padded;
        for (var i = 0; i < entries.Count; i++)
        {
            offsets[i] = at;
            entries[i].Data.Span.CopyTo(file.AsSpan((int)at));
            at += entries[i].Data.Length;
        }
        return (file, offsets);
    }

    /// <summary>Reads a whole file back: every tensor's dtype, shape and bytes.</summary>
    public static IReadOnlyList<Entry> Read(byte[] file)
    {
        if (file.Length < 8) throw new InvalidDataException("a safetensors file has at least 8 bytes");
        var length = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (length > (ulong)(file.Length - 8)) throw new InvalidDataException($"header of {length} bytes in a file of {file.Length}");
        var start = 8 + (long)length;
        try
        {
            var header = JsonNode.Parse(file.AsSpan(8, (int)length))!.AsObject();
            return header.Where(p => p.Key != "__metadata__").Select(p =>
            {
                var o = p.Value!.AsObject();
                var offsets = o["data_offsets"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
                if (offsets is not [var from, var to] || from < 0 || to < from || start + to > file.Length)
                    throw new InvalidDataException($"tensor '{p.Key}' has data offsets [{string.Join(", ", offsets)}] outside the file's {file.Length - start} data bytes");
                return new Entry(p.Key, o["dtype"]!.GetValue<string>(), o["shape"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray(),
                    file.AsMemory((int)(start + from), (int)(to - from)));
            }).ToList();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new InvalidDataException($"the safetensors header is not valid: {e.Message}", e);
        }
    }
}
