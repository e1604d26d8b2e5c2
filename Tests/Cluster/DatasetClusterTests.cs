using Elastic.Checkpoints.Stores;
using Elastic.Data;
using Elastic.Data.Datasets;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A job on a cluster reads its dataset from Azure Blob Storage (Azurite) as each silo's ranks need it, block by block with range
/// reads, and ends with the bits of one device that read the same dataset.
/// </summary>
[Collection(StorageEnvironment.Name)]
public sealed class DatasetClusterTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_job_on_two_silos_reads_a_dataset_in_blob_storage_block_by_block_and_ends_with_one_devices_bits()
    {
        Environment.SetEnvironmentVariable(StoreLocation.ConnectionVariable, azurite.Azurite.ConnectionString);
        var source = $"az://datasets-{Guid.NewGuid():N}/kjv";
        var text = CorpusSource.ReadBundledText("kjv")[..120_000];
        // Blocks of 256 ids: every step's windows come from blocks no earlier step read.
        await new DatasetWriter(StoreLocation.Open(source), new ByteTokenizer(), shardTokens: 20_000, blockTokens: 256).WriteAsync(text.Split("\n\n"), threads: 2);
        var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with
        {
            Data = new DataSpec { Source = source },
            Devices = new DeviceSpec { Min = 4, Max = 4 },
            Eval = new EvalSpec { Every = 2, Batches = 2 },
        };
        // The reference reads through a cache of its own, so the silos' ranks fetch every block themselves.
        var dataset = await DatasetTokens.OpenAsync(StoreLocation.Open(source), spec.Model.Vocab, new BlockCache(64L << 20));
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TokenCorpus.FromSource(spec, new ByteTokenizer(), dataset));
            return TrainingLoop.Run(trainer);
        });

        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var status = await cluster.Finish(await cluster.Client.SubmitAsync(spec));

        Assert.True(status.State == JobState.Completed, $"{status.State} {status.Error}");
        Assert.Equal(4, status.Plan!.Dp);
        await cluster.AssertSameRun(reference, status);
    }
}
