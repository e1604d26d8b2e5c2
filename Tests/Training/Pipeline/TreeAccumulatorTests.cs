using Elastic.Training.Engine;

namespace Elastic.Tests.Training.Pipeline;

/// <summary>Leaves arriving one by one (a stage's backwards) sum to the bits of the canonical tree, holding few partial sums.</summary>
public sealed class TreeAccumulatorTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(6)]
    [InlineData(8)]
    [InlineData(13)]
    public void Leaves_in_order_sum_to_the_canonical_tree(int count)
    {
        var random = new Random(count);
        var leaves = Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * Math.Pow(10, random.Next(-4, 5)))).ToArray();
        var released = 0;
        var accumulator = new TreeAccumulator<float[]>(0, count, (into, other) => into[0] += other[0], _ => released++);
        float[]? first = null;
        var held = 0;
        for (var i = 0; i < count; i++)
        {
            var leaf = new[] { leaves[i] };
            first ??= leaf;
            accumulator.Add(i, leaf);
            held = Math.Max(held, i + 1 - released);
        }

        Assert.True(accumulator.Complete);
        Assert.Equal(PairwiseTree.Reduce(0, count, i => leaves[i], (a, b) => a + b), first![0]);
        Assert.Equal(count - 1, released);
        Assert.True(held <= Math.Ceiling(Math.Log2(count)) + 1, $"held {held} partial sums for {count} leaves");
    }

    [Fact]
    public void The_tree_is_not_the_running_sum()
    {
        // Guards the test above: with these leaves a left-to-right sum has other bits than the tree.
        float[] leaves = [1f, 1f, 1f, 1f, 1f, 1f, 1f, 1e8f];
        var accumulator = new TreeAccumulator<float[]>(0, leaves.Length, (into, other) => into[0] += other[0], _ => { });
        var first = new[] { leaves[0] };
        accumulator.Add(0, first);
        for (var i = 1; i < leaves.Length; i++) accumulator.Add(i, [leaves[i]]);

        Assert.NotEqual(leaves.Aggregate((a, b) => a + b), first[0]);
    }

    [Fact]
    public void A_leaf_out_of_order_is_refused()
    {
        var accumulator = new TreeAccumulator<float[]>(0, 4, (into, other) => into[0] += other[0], _ => { });
        accumulator.Add(0, [1f]);

        var error = Assert.Throws<InvalidOperationException>(() => accumulator.Add(2, [1f]));
        Assert.Contains("leaf 2 arrived while leaf 1", error.Message);
    }
}
