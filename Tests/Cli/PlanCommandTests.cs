using Elastic.Cli;

namespace Elastic.Tests.Cli;

/// <summary><c>elastic plan</c>: the ranking for nodes that need not exist, and refusals by field.</summary>
public sealed class PlanCommandTests
{
    private static readonly string Gpt3 = Path.Combine(RepoPaths.Root, "examples", "published", "gpt3-175b.json");

    [Fact]
    public async Task Plan_ranks_layouts_for_ten_thousand_gpus_and_explains_the_choice_and_the_rejections()
    {
        var output = new StringWriter();

        var exit = await Invoke(output, "plan", Gpt3, "--shape", "1250x8:H100-80GB", "--top", "3");

        var text = output.ToString();
        Assert.Equal(0, exit);
        Assert.Contains("on 1250x8:H100-80GB (10,000 devices, H100-80GB); the spec pins nothing", text);
        Assert.Matches(@"(?m)^ 1  dp=\d+,pp=\d+,tp=\d", text);
        Assert.Matches(@"(?m)^ 3  dp=", text);
        Assert.Matches(@"(?m)^chosen: dp=\d+,pp=\d+,tp=\d", text);
        Assert.Contains("  memory per device: parameters ", text);
        Assert.Contains("  step: ", text);
        Assert.Contains("tp=1,pp=1: out of memory", text);
    }

    [Theory]
    [InlineData("1250x8:B300", "unknown device profile 'B300'")]
    [InlineData("lots", "'lots': expected NODESxDEVICES:PROFILE")]
    public async Task A_bad_shape_is_refused_naming_it(string shape, string reason)
    {
        var output = new StringWriter();

        Assert.Equal(2, await Invoke(output, "plan", Gpt3, "--shape", shape));
        Assert.Contains($"--shape {shape}: ", output.ToString());
        Assert.Contains(reason, output.ToString());
        Assert.DoesNotContain("   at ", output.ToString());
    }

    [Fact]
    public async Task A_bad_pin_is_refused_by_field_before_anything_is_planned()
    {
        var folder = Directory.CreateTempSubdirectory("elastic-plan-").FullName;
        try
        {
            var spec = Path.Combine(folder, "spec.json");
            File.WriteAllText(spec, """{ "name": "pinned", "parallel": { "tensor": 3, "zero": 5 } }""");
            var output = new StringWriter();

            Assert.Equal(2, await Invoke(output, "plan", spec, "--shape", "1x8:H100-80GB"));
            Assert.Contains("parallel.tensor = 3", output.ToString());
            Assert.Contains("parallel.zero = 5", output.ToString());
            Assert.DoesNotContain("weighed", output.ToString());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Task<int> Invoke(StringWriter output, params string[] args) =>
        ElasticCommandLine.Create().Parse(args).InvokeAsync(new() { Output = output, Error = output });
}
