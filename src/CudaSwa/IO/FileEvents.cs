namespace CudaSwa.IO;

/// <summary>
/// The moments at which a run changes its folder (a file created, written, renamed or deleted),
/// counted so the crash tests can stop a real process at each of them. Inert unless one of two
/// testing variables is set: CUDASWA_TEST_FILE_EVENTS=FILE appends "number TAB event" per event
/// to FILE (outside the run folder); CUDASWA_TEST_KILL_AT_FILE_EVENT=N kills the process with
/// SIGKILL at event N, as a power cut or an OOM kill would.
/// </summary>
internal static class FileEvents
{
    private static readonly string? s_log = Environment.GetEnvironmentVariable("CUDASWA_TEST_FILE_EVENTS");
    private static readonly long s_killAt = long.TryParse(Environment.GetEnvironmentVariable("CUDASWA_TEST_KILL_AT_FILE_EVENT"), out long n) ? n : -1;
    private static long s_count;

    public static void Hit(string what, string path)
    {
        if (s_log is null && s_killAt < 0) return;
        long number = Interlocked.Increment(ref s_count);
        if (s_log is not null) File.AppendAllText(s_log, $"{number}\t{what}\t{Path.GetFileName(path)}\n");
        if (number == s_killAt) System.Diagnostics.Process.GetCurrentProcess().Kill();
    }
}
