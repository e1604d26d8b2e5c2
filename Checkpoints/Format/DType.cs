namespace Elastic.Checkpoints.Format;

/// <summary>Element types a checkpoint stores, named as safetensors names them.</summary>
public static class DType
{
    private static readonly Dictionary<string, int> Sizes = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["U16"] = 2, ["U8"] = 1,
    };

    public static bool IsKnown(string dtype) => Sizes.ContainsKey(dtype);

    public static int SizeOf(string dtype) =>
        Sizes.TryGetValue(dtype, out var size) ? size : throw new ArgumentException($"unknown dtype '{dtype}'", nameof(dtype));
}
