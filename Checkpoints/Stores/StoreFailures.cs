using System.Net.Sockets;
using Azure;

namespace Elastic.Checkpoints.Stores;

/// <summary>
/// Which failures of a store mean it could not be reached or did not answer (after the SDK's retries), as opposed to
/// what it holds being wrong or missing: the first is worth trying again later, the second is not.
/// </summary>
public static class StoreFailures
{
    public static bool IsUnavailable(Exception e) => e switch
    {
        BlobNotFoundException or BlobAlreadyExistsException => false,
        RequestFailedException failed => failed.Status is 0 or 408 or 429 or >= 500,
        AggregateException all => all.InnerExceptions.Count > 0 && all.InnerExceptions.All(IsUnavailable),
        HttpRequestException or SocketException or TimeoutException or OperationCanceledException => true,
        IOException => true,
        _ => false,
    };

    /// <summary>The failure in one line (the Azure SDK's messages run to many, with headers).</summary>
    public static string Describe(Exception e)
    {
        var inner = e is AggregateException { InnerExceptions.Count: > 0 } all ? all.InnerExceptions[^1] : e;
        return inner.Message.Split('\n', 2)[0].Trim();
    }
}
