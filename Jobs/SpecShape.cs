using System.Reflection;
using System.Text.Json;

namespace Elastic.Jobs;

/// <summary>
/// Checks a JSON document against the shape of <see cref="TrainingSpec"/> before it is deserialized, and lists
/// every structural problem at once with the field, the value as written and what was expected: unknown
/// fields, fields given twice, nulls where a value is required, numbers written as strings and values of the
/// wrong type. A document that passes deserializes without surprises.
/// </summary>
public static class SpecShape
{
    private static readonly NullabilityInfoContext Nullability = new();

    public static List<SpecError> Check(JsonElement root)
    {
        var errors = new List<SpecError>();
        if (root.ValueKind != JsonValueKind.Object)
            errors.Add(new SpecError("spec", Show(root), "must be a JSON object"));
        else
            CheckObject(root, typeof(TrainingSpec), "", errors);
        return errors;
    }

    private static void CheckObject(JsonElement json, Type type, string prefix, List<SpecError> errors)
    {
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .ToDictionary(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name), StringComparer.OrdinalIgnoreCase);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var member in json.EnumerateObject())
        {
            var field = prefix + member.Name;
            if (!properties.TryGetValue(member.Name, out var property))
            {
                errors.Add(new SpecError(field, null, $"unknown field; the fields {(prefix.Length == 0 ? "of a spec" : "of " + prefix.TrimEnd('.'))} are {string.Join(", ", properties.Where(p => p.Value.SetMethod is not null).Select(p => p.Key))}"));
                continue;
            }
            if (!seen.Add(member.Name))
            {
                errors.Add(new SpecError(field, Show(member.Value), "is given more than once"));
                continue;
            }
            // Derived values (ffnSize, microBatchesPerStep) are written with a spec and ignored when read back.
            if (property.SetMethod is not null) CheckValue(member.Value, property, field, errors);
        }
    }

    private static void CheckValue(JsonElement value, PropertyInfo property, string field, List<SpecError> errors)
    {
        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        if (value.ValueKind == JsonValueKind.Null)
        {
            if (Nullability.Create(property).WriteState != NullabilityState.Nullable)
                errors.Add(new SpecError(field, "null", $"must be {Expected(type)}, not null (leave the field out for its default)"));
            return;
        }
        // A field the planner may choose also takes "auto".
        var auto = property.GetCustomAttribute<System.Text.Json.Serialization.JsonConverterAttribute>()?.ConverterType == typeof(AutoConverter);
        if (auto && value.ValueKind == JsonValueKind.String && value.GetString() == AutoConverter.Auto) return;
        var fits = type switch
        {
            _ when type == typeof(int) => value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out _),
            _ when type == typeof(ulong) => value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out _),
            _ when type == typeof(double) => value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && double.IsFinite(d),
            _ when type == typeof(bool) => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
            _ when type == typeof(string) => value.ValueKind == JsonValueKind.String,
            _ => value.ValueKind == JsonValueKind.Object,
        };
        if (!fits) errors.Add(new SpecError(field, Show(value), $"must be {Expected(type)}{(auto ? $" or \"{AutoConverter.Auto}\"" : "")}"));
        else if (value.ValueKind == JsonValueKind.Object) CheckObject(value, type, field + ".", errors);
    }

    private static string Expected(Type type) => type switch
    {
        _ when type == typeof(int) => "a whole number (32-bit)",
        _ when type == typeof(ulong) => "a whole number from 0 to 18446744073709551615",
        _ when type == typeof(double) => "a finite number",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(string) => "a string",
        _ => "an object",
    };

    /// <summary>The value as the user wrote it (<see cref="SpecError"/> shortens long ones when shown).</summary>
    private static string Show(JsonElement value) => value.GetRawText();
}
