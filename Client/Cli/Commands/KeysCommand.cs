using System.CommandLine;
using System.Globalization;
using Elastic.Client.Http;
using Elastic.GrainInterfaces;
using Elastic.Service.Access;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary>
/// <c>elastic keys create|list|revoke</c>: an admin manages the API's keys through the API (--api, an admin key in
/// ELASTIC_API_KEY); <c>elastic keys new</c> draws a key offline, for an operator's bootstrap admin key.
/// </summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var keys = new Command("keys", "Manage API keys (admins)");
        keys.Add(CreateKey());
        keys.Add(Api("list", "List API keys: ids, tenants, roles, expiry (never secrets)", [], async (_, console, client, cancellation) =>
        {
            var table = new Table().AddColumns("id", "tenant", "role", "name", "created", "expires", "revoked");
            string When(DateTimeOffset? t) => t?.ToString("u", CultureInfo.InvariantCulture) ?? "-";
            foreach (var k in await client.ListKeysAsync(cancellation))
                table.AddRow(k.Id, k.Tenant, k.Role.ToString().ToLowerInvariant(), Markup.Escape(k.Name), When(k.CreatedAt), When(k.ExpiresAt), When(k.RevokedAt));
            console.Ansi.Write(table);
            return 0;
        }));
        var id = new Argument<string>("id") { Description = "The key's id (the 12 hex digits after ek_)" };
        keys.Add(Api("revoke", "Revoke an API key: it stops working at once", [id], async (parse, console, client, cancellation) =>
        {
            var revoked = await client.RevokeKeyAsync(parse.GetValue(id)!, cancellation);
            console.Plain.WriteLine($"key {revoked.Id} of {revoked.Tenant} revoked at {revoked.RevokedAt:u}");
            return 0;
        }));
        var newKey = new Command("new", "Print a freshly drawn API key (for Elastic:Api:BootstrapAdminKey; keep it in a secret store)");
        newKey.SetAction(parse => CommandRunner.Run(parse, console =>
        {
            console.Plain.WriteLine(ApiKeySecret.New().Text);
            return Task.FromResult(0);
        }));
        keys.Add(newKey);
        return keys;
    }

    private static Command CreateKey()
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant the key acts for", Required = true };
        var role = new Option<ApiRole>("--role") { Description = "user (the tenant's jobs) or admin (every job, keys)", DefaultValueFactory = _ => ApiRole.User };
        var name = new Option<string?>("--name") { Description = "What the key is for, shown in `keys list`" };
        var days = new Option<double?>("--expires-in-days") { Description = "Days until the key stops working (default: never)" };
        return Api("create", "Create an API key; its secret is printed this once", [tenant, role, name, days], async (parse, console, client, cancellation) =>
        {
            var created = await client.CreateKeyAsync(new CreateKeyRequest(parse.GetValue(tenant)!, parse.GetValue(role), parse.GetValue(name), parse.GetValue(days)), cancellation);
            console.Plain.WriteLine(created.Key);
            console.Plain.WriteLine($"key {created.Info.Id} for {created.Info.Tenant} ({created.Info.Role.ToString().ToLowerInvariant()}){(created.Info.ExpiresAt is { } e ? $", expires {e:u}" : "")}: shown once, store it now");
            return 0;
        });
    }

    private delegate Task<int> ApiAction(ParseResult parse, CliOutput console, ElasticApiClient client, CancellationToken cancellation);

    private static Command Api(string name, string description, Symbol[] symbols, ApiAction action)
    {
        var api = ClusterConnection.ApiOption();
        var command = ClusterConnection.WithSymbols(new Command(name, description), symbols);
        command.Add(api);
        command.SetAction((parse, cancellation) => CommandRunner.Run(parse, async console =>
        {
            using var client = ClusterConnection.ApiClient(parse.GetValue(api));
            return await action(parse, console, client, cancellation);
        }));
        return command;
    }
}
