namespace Elastic.Jobs;

/// <summary>One problem with a spec: the field (dotted path), the offending value, and what is wrong.</summary>
public sealed record SpecError(string Field, string? Value, string Message)
{
    /// <summary>Values longer than this are shortened when shown (a 5,000-character name is not repeated back in full).</summary>
    public const int MaxShownValue = 80;

    public override string ToString() => Value is null ? $"{Field}: {Message}" : $"{Field} = {Shown(Value)}: {Message}";

    private static string Shown(string value) =>
        value.Length <= MaxShownValue ? value : $"{value[..MaxShownValue]}… ({value.Length} characters)";
}
