namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Which rows of the sequence a rank's activations hold and how it computes per-token work on them: from row
/// <paramref name="First"/> of a sequence of <paramref name="Length"/> rows, in <paramref name="Chunks"/> virtual chunks
/// (S/tp when <paramref name="Split"/> along the sequence, S when every rank holds the whole sequence, 1 without gradients).
/// </summary>
public readonly record struct SequencePart(long First, long Length, int Chunks, bool Split)
{
    /// <summary>The whole sequence on one rank, in <paramref name="chunks"/> chunks.</summary>
    public static SequencePart Whole(long length, int chunks) => new(0, length, chunks, false);
}
