using TorchSharp;

namespace Elastic.Training;

/// <summary>
/// Scalars the engine hands to TorchSharp, never made implicitly. A Scalar converted from a number owns a
/// native object that its finalizer frees, and nothing keeps it alive during the native call it was made
/// for: a garbage collection at that moment frees it mid-call ("Expected false to be true ... toFloat",
/// or a wrong value). TorchSharp makes such temporaries itself where an argument is left out (add(t) is
/// add(t, 1)), so every call names its scalars: these process-lifetime ones, or locals held by `using`
/// until the method returns. Tests/Training/NativeLifetimeTests forces collections to catch a regression.
/// </summary>
public static class ExplicitScalars
{
    /// <summary>The alpha of a plain add: pass it wherever TorchSharp would otherwise make a temporary 1.</summary>
    public static readonly Scalar One = 1.ToScalar();
}
