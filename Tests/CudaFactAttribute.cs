using Elastic.Training.Engine;

namespace Elastic.Tests;

/// <summary>A fact that needs a CUDA device; skipped, saying so, on a machine without one.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (ComputeDevices.CudaCount == 0) Skip = "no CUDA device";
    }
}
