using System.Net.Security;
using System.Security.Authentication;
using Elastic.Security;

namespace Elastic.Training.Collectives;

/// <summary>
/// Optional TLS for data-plane links: both ends present their <see cref="ClusterCertificate"/> (mutual TLS 1.3) and the
/// group-secret hello then runs inside the encrypted stream, so tensors never cross the network in the clear.
/// </summary>
public sealed class DataPlaneTls(ClusterCertificate identity)
{
    public ClusterCertificate Identity { get; } = identity;

    /// <summary>The dialling end's handshake over <paramref name="inner"/>.</summary>
    public Task<Stream> DialAsync(Stream inner, CancellationToken cancellation) => Handshake(inner, tls => tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
    {
        TargetHost = "elastic-data-plane",
        ClientCertificates = [Identity.Certificate],
        RemoteCertificateValidationCallback = (_, peer, _, _) => Identity.Accepts(peer),
        EnabledSslProtocols = SslProtocols.Tls13,
    }, cancellation));

    /// <summary>The listening end's handshake over <paramref name="inner"/>; the dialler must present a certificate too.</summary>
    public Task<Stream> AcceptAsync(Stream inner, CancellationToken cancellation) => Handshake(inner, tls => tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
    {
        ServerCertificate = Identity.Certificate,
        ClientCertificateRequired = true,
        RemoteCertificateValidationCallback = (_, peer, _, _) => Identity.Accepts(peer),
        EnabledSslProtocols = SslProtocols.Tls13,
    }, cancellation));

    /// <summary>The TLS stream over <paramref name="inner"/> once <paramref name="authenticate"/> succeeded; on failure both are closed.</summary>
    private static async Task<Stream> Handshake(Stream inner, Func<SslStream, Task> authenticate)
    {
        var tls = new SslStream(inner, leaveInnerStreamOpen: false);
        try
        {
            await authenticate(tls);
            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }
}
