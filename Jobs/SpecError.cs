namespace Elastic.Jobs;

/// <summary>One problem with a spec: the field (dotted path), the offending value, and what is wrong.</summary>
public sealed record SpecError(string Field, string? Value, string Message)
{
    public override string ToString() => Value is null ? $"{Field}: {Message}" : $"{Field} = {Value}: {Message}";
}
