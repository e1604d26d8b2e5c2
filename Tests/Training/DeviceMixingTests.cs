using Elastic.Training.Engine;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

/// <summary>
/// A CPU generator must never meet a tensor on another device (libtorch crashes the process). On a CPU machine the
/// meta device stands in for a GPU: the guard must refuse in managed code, naming the device, before native code runs.
/// </summary>
public sealed class DeviceMixingTests
{
    [Fact]
    public async Task Dropout_refuses_a_device_it_cannot_draw_masks_on_naming_it()
    {
        var error = await TestSpecs.OnDevice(() =>
        {
            var keys = new DropoutKeys(seed: 1, step: 1, [0L, 1L]);
            using var x = empty(4, 2, 8, device: META);
            return Record.Exception(() => keys.Apply(x, 0.1, 0, 4, site: 0));
        });
        var refused = Assert.IsType<NotSupportedException>(error);
        Assert.Contains("meta", refused.Message);
    }

    [Fact]
    public async Task Dropout_masks_on_a_cpu_depend_on_the_sample_and_the_row_not_on_where_they_are_computed()
    {
        var (pairEqual, aloneEqual, partEqual) = await TestSpecs.OnDevice(() =>
        {
            using var scope = NewDisposeScope();
            var x = ones(4, 2, 8); // sequence-major: 4 rows of 2 samples
            var both = new DropoutKeys(seed: 5, step: 3, [10L, 11L]);
            var swapped = new DropoutKeys(seed: 5, step: 3, [11L, 10L]);
            var alone = new DropoutKeys(seed: 5, step: 3, [11L]);
            var part = new DropoutKeys(seed: 5, step: 3, [10L, 11L]);
            var a = both.Apply(x, 0.5, 0, 4, site: 3);
            var b = swapped.Apply(x, 0.5, 0, 4, site: 3);
            var c = alone.Apply(x.narrow(1, 1, 1), 0.5, 0, 4, site: 3);
            var d = part.Apply(x.narrow(0, 2, 2), 0.5, 2, 4, site: 3);
            return (a[.., 1].equal(b[.., 0]).all().item<bool>(), a[.., 1].equal(c[.., 0]).all().item<bool>(), a.narrow(0, 2, 2).equal(d).all().item<bool>());
        });
        Assert.True(pairEqual, "sample 11's mask changed when it moved within the batch");
        Assert.True(aloneEqual, "sample 11's mask changed when its micro-batch changed");
        Assert.True(partEqual, "rows 2-3 of the sequence got other masks when a rank computed only them");
    }

    [Fact]
    public async Task A_dropout_site_draws_the_same_mask_whatever_sites_were_drawn_before_it()
    {
        // A pipeline stage that starts at layer 3 draws layer 3's masks without drawing those of layers 0-2 first.
        var same = await TestSpecs.OnDevice(() =>
        {
            using var scope = NewDisposeScope();
            var x = ones(4, 2, 8);
            var whole = new DropoutKeys(seed: 5, step: 3, [10L, 11L]);
            for (var layer = 0; layer < 3; layer++) whole.Apply(x, 0.5, 0, 4, DropoutKeys.Site(layer, 1));
            var afterOthers = whole.Apply(x, 0.5, 0, 4, DropoutKeys.Site(3, 0));
            var first = new DropoutKeys(seed: 5, step: 3, [10L, 11L]).Apply(x, 0.5, 0, 4, DropoutKeys.Site(3, 0));
            var otherSite = new DropoutKeys(seed: 5, step: 3, [10L, 11L]).Apply(x, 0.5, 0, 4, DropoutKeys.Site(3, 1));
            return (afterOthers.equal(first).all().item<bool>(), afterOthers.equal(otherSite).all().item<bool>());
        });
        Assert.True(same.Item1, "the site's mask depended on the draws before it");
        Assert.False(same.Item2, "two sites drew the same mask");
    }

    [Fact]
    public void Device_kinds_resolve_to_what_this_machine_has_and_unknown_ones_are_named()
    {
        Assert.Equal("cpu", ComputeDevices.ResolveKind("cpu", "--device"));
        Assert.Equal(ComputeDevices.CudaCount > 0 ? "cuda" : "cpu", ComputeDevices.ResolveKind("auto", "--device"));
        var unknown = Assert.Throws<ArgumentException>(() => ComputeDevices.ResolveKind("tpu", "--device"));
        Assert.Contains("--device = tpu", unknown.Message);
        Assert.Equal("cpu", ComputeDevices.Describe(CPU));
    }
}
