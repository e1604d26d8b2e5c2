using System.Runtime.InteropServices;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.HuggingFace;

namespace Elastic.Tests.Checkpoints;

/// <summary>
/// Narrowing float32 weights for a model folder (output.dtype) rounds to nearest even, as torch's <c>.to(torch.bfloat16)</c> and
/// IEEE half conversion do; widening back is exact, so narrowed weights read and written again come back byte for byte.
/// </summary>
public sealed class WeightDtypeTests
{
    [Theory]
    // value bits, bfloat16 bits: exact, ties to even (down and up), above a tie, sign, infinity, overflow to infinity, NaN kept.
    [InlineData(0x3F800000u, (ushort)0x3F80)]
    [InlineData(0x3F808000u, (ushort)0x3F80)]
    [InlineData(0x3F818000u, (ushort)0x3F82)]
    [InlineData(0x3F808001u, (ushort)0x3F81)]
    [InlineData(0x80000000u, (ushort)0x8000)]
    [InlineData(0xFF800000u, (ushort)0xFF80)]
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)]
    [InlineData(0x7FC00000u, (ushort)0x7FC0)]
    public void Float32_narrows_to_bfloat16_rounding_to_nearest_even(uint value, ushort expected)
    {
        var narrowed = Narrow([BitConverter.UInt32BitsToSingle(value)], "BF16");

        Assert.Equal(expected, BitConverter.ToUInt16(narrowed));
    }

    [Fact]
    public void Float32_narrows_to_float16_as_ieee_half_and_every_narrowed_value_widens_back_exactly()
    {
        float[] values = [1f / 3, 65504f, 65520f, -2.5e-8f, 6.1e-5f, 0.1f];

        var half = Narrow(values, "F16");
        var bf16 = Narrow(values, "BF16");

        Assert.Equal(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)), MemoryMarshal.Cast<byte, ushort>(half).ToArray());
        Assert.True(Half.IsPositiveInfinity(BitConverter.UInt16BitsToHalf(MemoryMarshal.Cast<byte, ushort>(half)[2])));
        foreach (var (narrowed, code) in new[] { (half, "F16"), (bf16, "BF16") })
            Assert.Equal(narrowed, Narrow(MemoryMarshal.Cast<byte, float>(WeightDtype.Widen(narrowed, code)).ToArray(), code));
    }

    [Fact]
    public void A_dtype_other_than_the_three_is_named() =>
        Assert.Contains("dtype 'float64'", Assert.Throws<ArgumentException>(() => WeightDtype.Code("float64")).Message);

    private static byte[] Narrow(float[] values, string code) =>
        WeightDtype.Narrow(new Safetensors.Entry("w", "F32", [values.Length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray()), code).Data.ToArray();
}
