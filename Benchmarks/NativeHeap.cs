using System.Runtime.InteropServices;

namespace Elastic.Benchmarks;

/// <summary>
/// Bytes the process's native heap has handed out and not taken back (glibc's mallinfo2: chunks in use plus mmapped
/// blocks). libtorch's CPU allocator takes tensor memory from it, so the growth over a forward pass is what that pass's
/// tensors hold.
/// </summary>
internal static class NativeHeap
{
    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena, OrdBlks, SmBlks, HBlks, HBlkHd, UsmBlks, FsmBlks, UordBlks, FordBlks, KeepCost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 Info();

    public static long InUse()
    {
        var info = Info();
        return (long)(info.UordBlks + info.HBlkHd);
    }
}
