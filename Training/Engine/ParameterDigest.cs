using System.Security.Cryptography;
using Elastic.Training.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>SHA-256 over all parameters in name order (raw little-endian bytes): equal digests mean bitwise-equal models.</summary>
public static class ParameterDigest
{
    public static string Compute(GptModel model) => Compute(model.ParametersByName());

    /// <summary>The digest of <paramref name="parameters"/>, which must already be in name order.</summary>
    public static string Compute(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("parameter digests are defined over little-endian bytes");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in parameters)
        {
            // The scope owns the intermediate detach(): a temporary left to the finalizer can be freed mid-call.
            using var scope = NewDisposeScope();
            var host = p.detach().cpu().contiguous();
            hash.AppendData(host.bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
