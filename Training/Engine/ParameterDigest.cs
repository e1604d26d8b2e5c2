using System.Security.Cryptography;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// SHA-256 over every parameter whole, in name order (raw little-endian fp32 bytes): equal digests mean bitwise-equal
/// models, whatever layout held them. On tp > 1 every rank of the tensor-parallel group computes it together.
/// </summary>
public static class ParameterDigest
{
    public static string Compute(DecoderModel model)
    {
        using var scope = NewDisposeScope();
        return Compute(model.WholeParameters());
    }

    /// <summary>The digest of whole tensors, which must already be in name order.</summary>
    public static string Compute(IEnumerable<(string Name, Tensor Tensor)> parameters)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("parameter digests are defined over little-endian bytes");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in parameters)
        {
            // The scope owns the intermediates: a temporary left to the finalizer can be freed mid-call.
            using var scope = NewDisposeScope();
            hash.AppendData(p.detach().cpu().contiguous().bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
