using System.Security.Cryptography;
using Elastic.Training.Model;

namespace Elastic.Training.Engine;

/// <summary>SHA-256 over all parameters in name order (raw little-endian bytes): equal digests mean bitwise-equal models.</summary>
public static class ParameterDigest
{
    public static string Compute(GptModel model)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("parameter digests are defined over little-endian bytes");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in model.ParametersByName())
        {
            using var host = p.detach().cpu().contiguous();
            hash.AppendData(host.bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
