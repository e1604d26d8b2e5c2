using System.Text.Json;
using System.Text.Json.Serialization;

namespace Elastic.Jobs;

/// <summary>
/// A spec field the planner may choose: the string <c>"auto"</c> (or null) reads as null and null is written as <c>"auto"</c>;
/// anything else is the field's own value. <see cref="SpecShape"/> has checked the value before this reads it.
/// </summary>
public sealed class AutoConverter : JsonConverterFactory
{
    public const string Auto = "auto";

    public override bool CanConvert(Type typeToConvert) => typeToConvert == typeof(int?) || typeToConvert == typeof(string);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        typeToConvert == typeof(int?) ? new Number() : new Text();

    private sealed class Number : JsonConverter<int?>
    {
        public override bool HandleNull => true;

        public override int? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Number ? reader.GetInt32()
            : reader.TokenType == JsonTokenType.Null || (reader.TokenType == JsonTokenType.String && reader.GetString() == Auto) ? null
            : throw new JsonException($"expected a whole number or \"{Auto}\"");

        public override void Write(Utf8JsonWriter writer, int? value, JsonSerializerOptions options)
        {
            if (value is { } number) writer.WriteNumberValue(number);
            else writer.WriteStringValue(Auto);
        }
    }

    private sealed class Text : JsonConverter<string?>
    {
        public override bool HandleNull => true;

        public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? null
            : reader.TokenType == JsonTokenType.String ? reader.GetString() is var text && text == Auto ? null : text
            : throw new JsonException($"expected a string or \"{Auto}\"");

        public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) => writer.WriteStringValue(value ?? Auto);
    }
}
