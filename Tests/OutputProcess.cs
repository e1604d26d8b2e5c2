using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Elastic.Tests;

/// <summary>A child process whose output (stdout and stderr) is collected line by line; every wait on it is bounded.</summary>
public sealed class OutputProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiting = [];

    private OutputProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Received(e.Data);
        process.ErrorDataReceived += (_, e) => Received(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <param name="inherit">Keep this process's environment (false: only <paramref name="environment"/>, as a container starts).</param>
    public static OutputProcess Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment, bool inherit = true,
        string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var arg in args) info.ArgumentList.Add(arg);
        if (!inherit) info.Environment.Clear();
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return new OutputProcess(Process.Start(info)!);
    }

    public string Output
    {
        get
        {
            lock (_output) return _output.ToString();
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The first line (seen or still to come) that matches, within <paramref name="timeout"/> (default a minute).</summary>
    public Task<string> Line(Func<string, bool> match, TimeSpan? timeout = null)
    {
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            if (_output.ToString().Split('\n').FirstOrDefault(l => match(l.TrimEnd('\r'))) is { } seen) return Task.FromResult(seen.TrimEnd('\r'));
            _waiting.Add((match, found));
        }
        return found.Task.WaitAsync(timeout ?? TimeSpan.FromMinutes(1));
    }

    /// <summary>Sends SIGTERM and waits (at most <paramref name="timeout"/>, default a minute) for the exit code.</summary>
    public async Task<int> Terminate(TimeSpan? timeout = null)
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        return await Exit(timeout);
    }

    public async Task<int> Exit(TimeSpan? timeout = null)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromMinutes(1));
        return _process.ExitCode;
    }

    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Received(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var waiter in _waiting.Where(w => w.Match(line)).ToList())
            {
                waiter.Found.TrySetResult(line);
                _waiting.Remove(waiter);
            }
        }
    }
}
