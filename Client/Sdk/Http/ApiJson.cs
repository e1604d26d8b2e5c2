using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Client.Http;

/// <summary>
/// How the API writes and reads JSON: web defaults (camelCase), enums by name, NaN and infinities as strings (a diverged
/// loss must still reach a client), and a silo's address as its parsable string.
/// </summary>
public static class ApiJson
{
    public static void Configure(JsonSerializerOptions options)
    {
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        options.Converters.Add(new SiloAddressJsonConverter());
        options.NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals;
    }

    public static JsonSerializerOptions Options { get; } = Create();

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(options);
        return options;
    }
}

/// <summary>A silo address as Orleans writes it ("127.0.0.1:11111@123456789"): its endpoint objects do not survive JSON.</summary>
public sealed class SiloAddressJsonConverter : JsonConverter<SiloAddress>
{
    public override SiloAddress Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        SiloAddress.FromParsableString(reader.GetString() ?? throw new JsonException("a silo address is a string"));

    public override void Write(Utf8JsonWriter writer, SiloAddress value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToParsableString());
}
