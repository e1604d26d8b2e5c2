using System.Text;

namespace Elastic.Data;

/// <summary>One token per UTF-8 byte: vocabulary 256, no training, nothing unknown.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    public string Name => "byte";
    public int VocabSize => 256;
    public int? EndOfText => null;

    public int[] Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    /// <summary>Ids outside a byte (a model with a larger vocabulary may emit them) are skipped.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length);
        foreach (var id in ids)
            if (id is >= 0 and < 256) bytes.Add((byte)id);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
