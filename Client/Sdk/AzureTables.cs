using Azure.Data.Tables;
using Azure.Identity;

namespace Elastic.Client;

/// <summary>
/// How silos and clients reach the Azure Table service that holds membership (and a silo's job records and reminders):
/// by a connection string (shared keys; Azurite locally) or by the account's table endpoint,
/// <c>https://ACCOUNT.table.core.windows.net</c>, signed in with DefaultAzureCredential (managed or workload identity:
/// no secret anywhere).
/// </summary>
public static class AzureTables
{
    public static TableServiceClient Connect(string connectionStringOrEndpoint) =>
        IsEndpoint(connectionStringOrEndpoint, out var endpoint)
            ? new TableServiceClient(endpoint, new DefaultAzureCredential())
            : new TableServiceClient(connectionStringOrEndpoint);

    /// <summary>True when the text is an https endpoint rather than a connection string.</summary>
    public static bool IsEndpoint(string text, out Uri endpoint) =>
        Uri.TryCreate(text, UriKind.Absolute, out endpoint!) && endpoint.Scheme == Uri.UriSchemeHttps;
}
