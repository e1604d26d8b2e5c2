using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Elastic.Service.Access;

/// <summary>
/// An API key as its holder sees it once: "ek_" + a 12-hex-digit id (to find the key) + "_" + 32 random bytes in base64url
/// (the secret). The service keeps only the secret's SHA-256: the secret is random, so a plain hash cannot be reversed.
/// </summary>
public sealed record ApiKeySecret(string Id, string Secret)
{
    private const string Prefix = "ek_";
    private const int IdLength = 12, SecretLength = 43;

    public static ApiKeySecret New() =>
        new(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdLength / 2)), Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32)));

    /// <summary>The key as a caller presents it. Never logged: <see cref="ToString"/> leaves the secret out.</summary>
    public string Text => $"{Prefix}{Id}_{Secret}";

    public byte[] Hash() => SHA256.HashData(Encoding.UTF8.GetBytes(Secret));

    /// <summary>Whether <paramref name="text"/> has the shape of an API key (a bearer token that is not one goes to the JWT handler).</summary>
    public static bool Looks(string text) => text.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The key in <paramref name="text"/>, or null if it is not one.</summary>
    public static ApiKeySecret? Parse(string text)
    {
        if (text.Length != Prefix.Length + IdLength + 1 + SecretLength || !Looks(text) || text[Prefix.Length + IdLength] != '_') return null;
        var id = text.Substring(Prefix.Length, IdLength);
        var secret = text[(Prefix.Length + IdLength + 1)..];
        return id.All(char.IsAsciiHexDigitLower) && Base64Url.IsValid(secret) ? new ApiKeySecret(id, secret) : null;
    }

    public override string ToString() => $"{Prefix}{Id}_…";
}
