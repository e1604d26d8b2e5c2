using TorchSharp;

namespace Elastic.Training.Collectives.Nccl;

/// <summary>ncclResult_t.</summary>
public enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    RemoteError = 6,
    InProgress = 7,
    Timeout = 8,
}

/// <summary>ncclDataType_t, for the dtypes tensors of a job hold.</summary>
public enum NcclDataType
{
    Int8 = 0,
    Uint8 = 1,
    Int32 = 2,
    Int64 = 4,
    Float16 = 6,
    Float32 = 7,
    Float64 = 8,
    Bfloat16 = 9,
}

public static class NcclTypes
{
    /// <summary>NCCL's name for <paramref name="type"/>; a dtype NCCL cannot carry is an error that names it.</summary>
    public static NcclDataType Of(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Int8 => NcclDataType.Int8,
        torch.ScalarType.Byte or torch.ScalarType.Bool => NcclDataType.Uint8,
        torch.ScalarType.Int32 => NcclDataType.Int32,
        torch.ScalarType.Int64 => NcclDataType.Int64,
        torch.ScalarType.Float16 => NcclDataType.Float16,
        torch.ScalarType.Float32 => NcclDataType.Float32,
        torch.ScalarType.Float64 => NcclDataType.Float64,
        torch.ScalarType.BFloat16 => NcclDataType.Bfloat16,
        _ => throw new ArgumentException($"NCCL carries no {type} tensors", nameof(type)),
    };
}
