using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Elastic.Security;

/// <summary>
/// A cluster member's certificate (with its key) and whom it trusts: a peer whose certificate chains to one of
/// <see cref="Trusted"/> (a cluster's own CA), or, with no CA given, one presenting this very certificate (one certificate
/// shared by the cluster). Members reach each other by address, so host names are never checked. Used for mutual TLS on
/// the data plane and between silos and clients.
/// </summary>
public sealed class ClusterCertificate(X509Certificate2 certificate, X509Certificate2Collection? trusted = null)
{
    public X509Certificate2 Certificate { get; } = certificate.HasPrivateKey
        ? certificate
        : throw new ArgumentException($"the certificate {certificate.Subject} has no private key", nameof(certificate));

    /// <summary>The CA certificates a peer's must chain to; null: a peer must present <see cref="Certificate"/> itself.</summary>
    public X509Certificate2Collection? Trusted { get; } = trusted;

    /// <summary>Loads the certificate (PKCS#12, with its key) and, optionally, the CA certificates (PEM) that peers' chain to.</summary>
    /// <exception cref="ArgumentException">A file is missing or unreadable, or the certificate has no key; the message names the file.</exception>
    public static ClusterCertificate Load(string certificatePath, string? password, string? trustedPath)
    {
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new ArgumentException($"{certificatePath}: not a readable PKCS#12 certificate with its key ({e.Message})", e);
        }
        if (trustedPath is null) return new ClusterCertificate(certificate);
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(trustedPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new ArgumentException($"{trustedPath}: not a readable PEM file of CA certificates ({e.Message})", e);
        }
        return authorities.Count > 0 ? new ClusterCertificate(certificate, authorities) : throw new ArgumentException($"{trustedPath}: holds no certificate");
    }

    /// <summary>
    /// A new self-signed certificate (ECDSA P-256, valid for a year) for a cluster to share, with its key: for trying TLS out
    /// and for benchmarks; production clusters load theirs (<see cref="Load"/>) from their secret store.
    /// </summary>
    public static X509Certificate2 SelfSigned(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        // Through PKCS#12, as a loaded one: TLS cannot use an ephemeral key on every platform.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
    }

    /// <summary>Whether <paramref name="presented"/> (a peer's certificate) is one this member trusts.</summary>
    public bool Accepts(X509Certificate? presented)
    {
        if (presented is null) return false;
        using var peer = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        if (Trusted is null) return peer.RawDataMemory.Span.SequenceEqual(Certificate.RawDataMemory.Span);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(Trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(peer);
    }
}
