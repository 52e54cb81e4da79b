namespace CudaSwa.Util;

/// <summary>
/// The moments at which a run changes its folder (a file created, written, renamed or deleted),
/// counted so the crash tests can stop a real process at each of them. Inert unless one of three
/// testing variables is set: CUDASWA_TEST_FILE_EVENTS=FILE appends "number TAB event" per event
/// to FILE (outside the run folder); CUDASWA_TEST_KILL_AT_FILE_EVENT=N kills the process with
/// SIGKILL at event N, as a power cut or an OOM kill would; CUDASWA_TEST_HOLD_AT_FILE_EVENT=N:PATH
/// holds the process at event N — it writes PATH.held and waits (up to 5 minutes) until PATH
/// exists — so a test can act at that exact moment (e.g. kill another rank) without a race.
/// </summary>
internal static class FileEvents
{
    private static readonly string? s_log = Environment.GetEnvironmentVariable("CUDASWA_TEST_FILE_EVENTS");
    private static readonly long s_killAt = long.TryParse(Environment.GetEnvironmentVariable("CUDASWA_TEST_KILL_AT_FILE_EVENT"), out long n) ? n : -1;
    private static readonly (long At, string Release)? s_hold = ParseHold(Environment.GetEnvironmentVariable("CUDASWA_TEST_HOLD_AT_FILE_EVENT"));
    private static long s_count;

    private static (long, string)? ParseHold(string? value)
    {
        int colon = value?.IndexOf(':') ?? -1;
        return colon > 0 && long.TryParse(value![..colon], out long at) ? (at, value[(colon + 1)..]) : null;
    }

    public static void Hit(string what, string path)
    {
        if (s_log is null && s_killAt < 0 && s_hold is null) return;
        long number = Interlocked.Increment(ref s_count);
        if (s_log is not null) File.AppendAllText(s_log, $"{number}\t{what}\t{Path.GetFileName(path)}\n");
        if (number == s_killAt) System.Diagnostics.Process.GetCurrentProcess().Kill();
        if (s_hold is { } hold && number == hold.At)
        {
            File.WriteAllText(hold.Release + ".held", $"{number}\t{what}\t{Path.GetFileName(path)}\n");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!File.Exists(hold.Release) && clock.Elapsed < TimeSpan.FromMinutes(5)) Thread.Sleep(20);
        }
    }
}
