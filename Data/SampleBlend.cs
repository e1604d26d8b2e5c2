namespace Elastic.Data;

/// <summary>
/// Which source of a weighted mixture each global sample comes from, and which of that source's samples it is: sample i goes to
/// the source furthest behind its share (weight x (i + 1) minus what it has had; ties to the lower index), as Megatron-LM blends
/// datasets. A pure function of the weights, so every rank and layout draws the same sources in the same order; computed as far
/// as it is asked and kept.
/// </summary>
public sealed class SampleBlend
{
    private readonly double[] _weights;
    private readonly long[] _taken;
    private readonly List<byte> _source = [];
    private readonly List<long> _index = [];
    private readonly Lock _gate = new();

    /// <param name="weights">Positive weights, one per source (at most 256), normalised here.</param>
    public SampleBlend(IReadOnlyList<double> weights)
    {
        if (weights.Count is 0 or > 256 || weights.Any(w => !(w > 0) || !double.IsFinite(w)))
            throw new ArgumentException("a blend needs 1 to 256 positive, finite weights", nameof(weights));
        var total = weights.Sum();
        _weights = weights.Select(w => w / total).ToArray();
        _taken = new long[weights.Count];
    }

    public int Sources => _weights.Length;

    public (int Source, long Sample) Of(long global)
    {
        if (_weights.Length == 1) return (0, global);
        lock (_gate)
        {
            for (var i = _source.Count; i <= global; i++)
            {
                var best = 0;
                for (var s = 1; s < _weights.Length; s++)
                    if (_weights[s] * (i + 1) - _taken[s] > _weights[best] * (i + 1) - _taken[best]) best = s;
                _source.Add((byte)best);
                _index.Add(_taken[best]++);
            }
            return (_source[(int)global], _index[(int)global]);
        }
    }
}
