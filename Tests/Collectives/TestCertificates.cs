using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Elastic.Tests.Collectives;

/// <summary>Certificates made for a test: a CA and the leaves it issues (a self-signed one: DataPlaneTls.SelfSigned).</summary>
internal static class TestCertificates
{
    private static readonly DateTimeOffset From = DateTimeOffset.UtcNow.AddMinutes(-5), To = DateTimeOffset.UtcNow.AddDays(1);

    /// <summary>A certificate authority: its certificate (public part) and a way to issue leaf certificates with keys.</summary>
    public sealed class Authority : IDisposable
    {
        private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        public Authority(string name) => Certificate = Request(name, _key, authority: true).CreateSelfSigned(From, To);

        public X509Certificate2 Certificate { get; }

        public X509Certificate2 Issue(string name)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var issued = Request(name, key, authority: false).Create(Certificate, From, To, RandomNumberGenerator.GetBytes(8));
            using var withKey = issued.CopyWithPrivateKey(key);
            return WithKey(withKey);
        }

        public void Dispose()
        {
            Certificate.Dispose();
            _key.Dispose();
        }
    }

    private static CertificateRequest Request(string name, ECDsa key, bool authority)
    {
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(authority, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(authority ? X509KeyUsageFlags.KeyCertSign : X509KeyUsageFlags.DigitalSignature, true));
        if (!authority)
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        return request;
    }

    // Through PKCS#12, as a silo loads it: an ephemeral key is not usable by TLS on every platform.
    private static X509Certificate2 WithKey(X509Certificate2 certificate) => X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
}
