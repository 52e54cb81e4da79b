namespace CudaSwa.Tests.Support;

/// <summary>
/// Fresh random inputs for every run: the seed changes each time and is part of every failure
/// message (set CUDASWA_TEST_SEED to replay one).
/// </summary>
public sealed class Fresh
{
    private static int s_counter;

    public Fresh()
    {
        string? env = Environment.GetEnvironmentVariable("CUDASWA_TEST_SEED");
        Seed = int.TryParse(env, out int s) ? s : unchecked(Environment.TickCount * 31 + Interlocked.Increment(ref s_counter) * 7919);
        Random = new Random(Seed);
    }

    public int Seed { get; }
    public Random Random { get; }

    public float[] Floats(int n, float lo = -1f, float hi = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = lo + (float)Random.NextDouble() * (hi - lo);
        return a;
    }

    /// <summary>Values whose magnitude is at least <paramref name="gap"/> (keeps finite differences away from ReLU's kink).</summary>
    public float[] FloatsAwayFromZero(int n, float gap, float max = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            float m = gap + (float)Random.NextDouble() * (max - gap);
            a[i] = Random.Next(2) == 0 ? m : -m;
        }
        return a;
    }

    public int[] Ints(int n, int lo, int hiExclusive)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = Random.Next(lo, hiExclusive);
        return a;
    }

    public override string ToString() => $"seed {Seed}";
}
