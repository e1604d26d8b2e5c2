using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Elastic.Checkpoints.Format;

namespace Elastic.Checkpoints.HuggingFace;

/// <summary>
/// The dtypes model folders hold weights in, by Hugging Face's <c>torch_dtype</c> name and safetensors' code, and the one rule for
/// converting: float32 to bfloat16 or float16 rounds to nearest even (as torch's <c>.to()</c> does), and back widens exactly, so
/// narrowed weights read and written again come back byte for byte.
/// </summary>
public static class WeightDtype
{
    /// <summary>The safetensors code of a <c>torch_dtype</c> name (<c>output.dtype</c>).</summary>
    public static string Code(string torchDtype) => torchDtype switch
    {
        "float32" => "F32",
        "bfloat16" => "BF16",
        "float16" => "F16",
        _ => throw new ArgumentException($"dtype '{torchDtype}' (float32, bfloat16 or float16)", nameof(torchDtype)),
    };

    /// <summary>Bytes per value of a safetensors code this reads; 0 for any other.</summary>
    public static int Width(string code) => code switch { "F32" => 4, "BF16" or "F16" => 2, _ => 0 };

    /// <summary><paramref name="entry"/> (float32) in <paramref name="code"/>.</summary>
    public static Safetensors.Entry Narrow(Safetensors.Entry entry, string code)
    {
        if (code == "F32") return entry;
        var source = MemoryMarshal.Cast<byte, float>(entry.Data.Span);
        var result = new byte[source.Length * 2];
        for (var i = 0; i < source.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(2 * i), code == "BF16" ? Bfloat16Bits(source[i]) : BitConverter.HalfToUInt16Bits((Half)source[i]));
        return entry with { DType = code, Data = result };
    }

    /// <summary>Values in <paramref name="code"/> (F32, BF16 or F16) as float32 bytes: widened exactly.</summary>
    public static byte[] Widen(ReadOnlySpan<byte> data, string code)
    {
        if (code == "F32") return data.ToArray();
        var result = new byte[data.Length * 2];
        var target = MemoryMarshal.Cast<byte, float>(result.AsSpan());
        for (var i = 0; i < target.Length; i++)
        {
            var bits = BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]);
            target[i] = code == "BF16" ? BitConverter.Int32BitsToSingle(bits << 16) : (float)BitConverter.UInt16BitsToHalf(bits);
        }
        return result;
    }

    /// <summary>The upper half of a float32, rounded to nearest even; a NaN stays a (quiet) NaN.</summary>
    private static ushort Bfloat16Bits(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
