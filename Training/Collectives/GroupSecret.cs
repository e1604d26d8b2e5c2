using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Elastic.Training.Collectives;

/// <summary>
/// The secret every rank of a generation's groups is given with its assignment (never sent on the data plane). Two data
/// planes that link prove to each other that they hold it: each side sends a fresh nonce, and each answers with an HMAC
/// of the whole hello (role, group, ranks, both nonces), so a recorded answer is worth nothing on another connection.
/// </summary>
public sealed class GroupSecret
{
    public const int Bytes = 32, NonceBytes = 32, ProofBytes = 32;
    private readonly byte[] _key;

    private GroupSecret(byte[] key) => _key = key;

    public static GroupSecret New() => new(RandomNumberGenerator.GetBytes(Bytes));

    /// <summary>The secret an assignment carries; anything but 32 bytes is refused (an empty one would authenticate nobody).</summary>
    public static GroupSecret From(ReadOnlySpan<byte> key) =>
        key.Length == Bytes ? new GroupSecret(key.ToArray()) : throw new ArgumentException($"a group secret is {Bytes} bytes, not {key.Length}", nameof(key));

    public static byte[] NewNonce() => RandomNumberGenerator.GetBytes(NonceBytes);

    /// <summary>What <paramref name="role"/> ("dialler" or "listener") answers for this hello.</summary>
    public byte[] Prove(string role, string group, int from, int to, ReadOnlySpan<byte> dialNonce, ReadOnlySpan<byte> listenNonce)
    {
        var text = Encoding.UTF8.GetBytes($"elastic data plane\n{role}\n{group}");
        var transcript = new byte[4 + text.Length + 8 + dialNonce.Length + listenNonce.Length];
        BinaryPrimitives.WriteInt32LittleEndian(transcript, text.Length);
        text.CopyTo(transcript, 4);
        BinaryPrimitives.WriteInt32LittleEndian(transcript.AsSpan(4 + text.Length), from);
        BinaryPrimitives.WriteInt32LittleEndian(transcript.AsSpan(8 + text.Length), to);
        dialNonce.CopyTo(transcript.AsSpan(12 + text.Length));
        listenNonce.CopyTo(transcript.AsSpan(12 + text.Length + dialNonce.Length));
        return HMACSHA256.HashData(_key, transcript);
    }

    public bool Verify(ReadOnlySpan<byte> proof, string role, string group, int from, int to, ReadOnlySpan<byte> dialNonce, ReadOnlySpan<byte> listenNonce) =>
        CryptographicOperations.FixedTimeEquals(proof, Prove(role, group, from, to, dialNonce, listenNonce));

    public override string ToString() => "GroupSecret(…)";
}
