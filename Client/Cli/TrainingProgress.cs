using System.Globalization;
using Elastic.Jobs.Reports;
using Spectre.Console;

namespace Elastic.Cli;

/// <summary>Where a running job reports: each committed step (with a held-out loss when one was measured), and notes such as plan changes.</summary>
internal sealed record ProgressSink(Action<StepRecord, EvalRecord?> Step, Action<string> Note);

/// <summary>A live progress bar (step, loss, tokens/s, ETA) on a terminal; periodic plain lines when output is redirected.</summary>
internal static class TrainingProgress
{
    public static async Task<T> Show<T>(CliOutput console, int totalSteps, Func<ProgressSink, Task<T>> run)
    {
        if (!console.Ansi.Profile.Capabilities.Interactive)
        {
            var every = Math.Max(1, totalSteps / 20);
            return await run(new ProgressSink(
                (step, eval) =>
                {
                    if (step.Step % every == 0 || step.Step == totalSteps || eval is not null)
                        console.Plain.WriteLine(Describe(step, eval, totalSteps));
                },
                console.Plain.WriteLine));
        }

        T result = default!;
        await console.Ansi.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("starting", maxValue: totalSteps);
                result = await run(new ProgressSink(
                    (step, eval) =>
                    {
                        task.Description = Markup.Escape(Describe(step, eval, totalSteps));
                        task.Value = step.Step;
                    },
                    note => console.Ansi.MarkupLine(Markup.Escape(note))));
                task.StopTask();
            });
        return result;
    }

    private static string Describe(StepRecord step, EvalRecord? eval, int totalSteps)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"step {step.Step}/{totalSteps}  loss {step.Loss:F4}  lr {step.LearningRate:0.###e+0}  {step.TokensPerSecond:N0} tok/s{(step.Experts is { } experts ? $"  experts {experts.MaxOverMean:F2}x mean, dropped {experts.Dropped}" : "")}");
        return eval is null ? text : text + string.Create(CultureInfo.InvariantCulture, $"  held-out {eval.Loss:F4}");
    }
}
