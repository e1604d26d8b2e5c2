using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;

namespace Elastic.Tests.Coordination;

/// <summary>
/// Coming back from a checkpoint while the checkpoint store does not answer: the job waits it out (found by the chaos soak,
/// where a storage blip during a restore failed two jobs), and past its patience it stops saying why.
/// </summary>
public sealed class CheckpointRestoreTests
{
    private static readonly Elastic.Jobs.TrainingSpec Spec = TestSpecs.Tiny(steps: 20);

    [Fact]
    public async Task A_restore_the_store_did_not_answer_is_tried_again_with_one_event_and_succeeds()
    {
        var job = new FakeReplanJob(Spec, ["a", "b"], replicas: 2, committed: 5);
        var units = job.Units.Cast<FakeUnit>().ToArray();
        units[1].StoreOutages = 2;

        await job.Checkpoints.Restore(job.Record.Plan!, job.Units, "jobs/fake-job/step-00000004-g1/manifest.json");

        Assert.Equal(3, units[1].Restores);
        var outage = Assert.Single(job.Events(JobEventKinds.CheckpointStoreUnavailable));
        Assert.StartsWith("restoring jobs/fake-job/step-00000004-g1/manifest.json: the checkpoint store did not answer", outage.Message);
        Assert.Contains("trying again for up to 5 s", outage.Message);
    }

    [Fact]
    public async Task A_store_down_past_the_patience_fails_the_restore_naming_the_store()
    {
        var job = new FakeReplanJob(Spec, ["a"], replicas: 1, committed: 5);
        ((FakeUnit)job.Units[0]).StoreOutages = int.MaxValue;

        var failure = await Assert.ThrowsAsync<JobFailure>(() => job.Checkpoints.Restore(job.Record.Plan!, job.Units, "jobs/fake-job/step-00000004-g1/manifest.json"));

        Assert.Contains("the checkpoint store did not answer", failure.Message);
        Assert.Equal(3, ((FakeUnit)job.Units[0]).Restores); // at 0, 1 and 3 s; the next wait (4 s) would pass the 5 s patience
    }
}
