using System.Security.Authentication;
using Elastic.Security;
using Orleans.Connections.Security;

namespace Elastic.Client;

/// <summary>
/// Mutual TLS for Orleans traffic (silo to silo, client to gateway): every end presents its <see cref="ClusterCertificate"/>
/// and accepts only peers that certificate trusts. Silos and clients configure it alike.
/// </summary>
public static class ClusterTls
{
    /// <summary>The name a client asks for; trust comes from the certificate chain, not the name (members are reached by address).</summary>
    private const string TargetHost = "elastic-cluster";

    public const string CertificateVariable = "ELASTIC_CLUSTER_TLS_CERTIFICATE", PasswordVariable = "ELASTIC_CLUSTER_TLS_PASSWORD", TrustedVariable = "ELASTIC_CLUSTER_TLS_TRUSTED";

    public static void Configure(TlsOptions options, ClusterCertificate identity)
    {
        options.LocalCertificate = identity.Certificate;
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.SslProtocols = SslProtocols.Tls13;
        options.RemoteCertificateValidation = (certificate, _, _) => identity.Accepts(certificate);
        options.OnAuthenticateAsClient = (_, client) => client.TargetHost = TargetHost;
    }

    /// <summary>A client's certificate from ELASTIC_CLUSTER_TLS_CERTIFICATE (PKCS#12), _PASSWORD and _TRUSTED (PEM of CAs); null when not set.</summary>
    /// <exception cref="ArgumentException">A file cannot be read; the message names it, never the password.</exception>
    public static ClusterCertificate? FromEnvironment() =>
        Environment.GetEnvironmentVariable(CertificateVariable) is { Length: > 0 } path
            ? ClusterCertificate.Load(path, Environment.GetEnvironmentVariable(PasswordVariable),
                Environment.GetEnvironmentVariable(TrustedVariable) is { Length: > 0 } trusted ? trusted : null)
            : null;
}
