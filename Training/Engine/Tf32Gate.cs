namespace Elastic.Training.Engine;

/// <summary>
/// Whether CUDA matmuls may use TF32 is one switch for the whole process, read by libtorch when each matmul is
/// launched, while one silo process runs jobs of different precisions on its devices at once. A device thread
/// holds the gate in its mode while it launches a step's work: threads in the same mode share it, a thread in the
/// other mode waits until they leave, and while it waits no newcomer of the held mode gets in (no starvation).
/// </summary>
public sealed class Tf32Gate(Action<bool> setSwitch)
{
    private readonly object _lock = new();
    private bool _mode;
    private int _holders;
    private readonly int[] _waiting = new int[2];

    /// <summary>Holds the gate with TF32 <paramref name="tf32"/> until the result is disposed.</summary>
    public Holder Enter(bool tf32)
    {
        lock (_lock)
        {
            _waiting[Index(tf32)]++;
            while (!MayEnter(tf32)) Monitor.Wait(_lock);
            _waiting[Index(tf32)]--;
            if (_holders == 0 && _mode != tf32)
            {
                setSwitch(tf32);
                _mode = tf32;
            }
            _holders++;
        }
        return new Holder(this);
    }

    // A free gate goes to the other mode first when the last holders were of this one and the other waits.
    private bool MayEnter(bool tf32) => _holders == 0
        ? !(_mode == tf32 && _waiting[Index(!tf32)] > 0)
        : _mode == tf32 && _waiting[Index(!tf32)] == 0;

    private void Leave()
    {
        lock (_lock)
        {
            if (--_holders == 0) Monitor.PulseAll(_lock);
        }
    }

    private static int Index(bool tf32) => tf32 ? 1 : 0;

    /// <summary>The process's gate over libtorch's switch.</summary>
    public static Tf32Gate Cuda { get; } = new(on => TorchSharp.torch.backends.cuda.matmul.allow_tf32 = on);

    /// <summary>A hold on the gate; the default one holds nothing (devices whose matmuls the switch does not affect).</summary>
    public readonly struct Holder(Tf32Gate? gate) : IDisposable
    {
        public void Dispose() => gate?.Leave();
    }
}
