using System.Diagnostics;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>The CPU's ways of running a convolution pass.</summary>
internal enum ConvAlgorithm
{
    /// <summary>im2col + the packed GEMM: every shape.</summary>
    Gemm,
    /// <summary><see cref="DirectConvolution"/>: 3x3 (pad 1) and 1x1 (pad 0), stride 1 or 2, on AVX-512.</summary>
    Direct,
    /// <summary><see cref="WinogradConvolution"/> with F(2x2, 3x3) tiles: 3x3, stride 1, pad 1, on AVX-512.</summary>
    Winograd2,
    /// <summary><see cref="WinogradConvolution"/> with F(4x4, 3x3) tiles.</summary>
    Winograd4,
}

/// <summary>
/// How the CPU backend picks the algorithm of each convolution shape and pass, from the
/// environment variable CUDASWA_CPU_CONV:
/// <list type="bullet">
/// <item>"rule" (the default): a fixed rule of shape → algorithm (<see cref="ByRule"/>), so the same
/// shapes give the same bits in every process — a resumed run or another rank of a job included;</item>
/// <item>"measure": each candidate timed on the first call of each shape and pass (twice, the better
/// time kept), the fastest remembered for the process (as cuDNN's Find); different processes may
/// then choose differently and round differently, within the tested tolerances;</item>
/// <item>an algorithm name (gemm, direct, winograd2, winograd4): pinned wherever it applies, the
/// rule elsewhere.</item>
/// </list>
/// </summary>
internal sealed class ConvolutionChoice
{
    public const string Variable = "CUDASWA_CPU_CONV";

    private static string? s_mode;

    /// <summary>The mode read from the environment on first use (a value it does not know is an error naming the variable), or set by tests.</summary>
    public static string Mode
    {
        get => s_mode ??= Parse(Environment.GetEnvironmentVariable(Variable));
        set => s_mode = value;
    }

    private string? _override;

    /// <summary>This backend's own mode in place of <see cref="Mode"/> (null: the process's); setting it forgets every decision.</summary>
    public string? Override
    {
        get => _override;
        set
        {
            _override = value is null ? null : Parse(value);
            _decisions.Clear();
        }
    }

    internal static string Parse(string? value)
    {
        string v = (value ?? "").Trim().ToLowerInvariant();
        if (v.Length == 0) return "rule";
        if (v is "rule" or "measure" or "gemm" or "direct" or "winograd2" or "winograd4") return v;
        throw new ArgumentException($"{Variable}: '{value}' is not valid; expected rule, measure, gemm, direct, winograd2 or winograd4.");
    }

    /// <summary>What was chosen for one shape and pass, how, and (when measured) each candidate's time.</summary>
    public readonly record struct Decision(ConvAlgorithm Algorithm, string How, IReadOnlyList<(ConvAlgorithm Algorithm, double Seconds)> Timings);

    private readonly Dictionary<(ConvGeometry, ConvPass), Decision> _decisions = [];

    /// <summary>Every decision this backend made, for --profile and the benchmarks.</summary>
    public IReadOnlyDictionary<(ConvGeometry Geometry, ConvPass Pass), Decision> Decisions => _decisions;

    /// <summary>The algorithms that can run this shape on this CPU.</summary>
    public static IReadOnlyList<ConvAlgorithm> Candidates(ConvGeometry g)
    {
        var list = new List<ConvAlgorithm> { ConvAlgorithm.Gemm };
        if (DirectConvolution.Supports(g)) list.Add(ConvAlgorithm.Direct);
        if (WinogradConvolution.Supports(g)) { list.Add(ConvAlgorithm.Winograd2); list.Add(ConvAlgorithm.Winograd4); }
        return list;
    }

    /// <summary>
    /// The fixed rule: Winograd F(2x2) for 3x3 stride-1 convolutions (the filter gradient only
    /// where it reads rows of 16 or 32 directly; on 8x8 images the direct kernel is faster), the
    /// packed GEMM for the filter gradients of wide layers (C x K >= 8192), the direct kernels for
    /// the other shapes they serve, im2col + GEMM for the rest. F(4x4) is never
    /// the rule: on the measured machines its transforms cost more than its products save. See
    /// docs/benchmarks.md for the measurements behind it.
    /// </summary>
    public static ConvAlgorithm ByRule(ConvGeometry g, ConvPass pass)
    {
        if (WinogradConvolution.Supports(g) && (pass != ConvPass.BackwardFilter || WinogradConvolution.FilterReadsRows(g.H, g.W))) return ConvAlgorithm.Winograd2;
        // Wide filter gradients: the direct kernel's vector accumulators (8 outputs x 3 taps per tile) lose to the
        // packed GEMM once there are many (output, input) pairs (measured 1.2-3x at C*K >= 8192, docs/benchmarks.md).
        if (pass == ConvPass.BackwardFilter && (long)g.C * g.K >= 8192) return ConvAlgorithm.Gemm;
        return DirectConvolution.Supports(g) ? ConvAlgorithm.Direct : ConvAlgorithm.Gemm;
    }

    /// <summary>
    /// The algorithm for this shape and pass. In "measure" mode the first call times every
    /// candidate through <paramref name="run"/>; <paramref name="output"/> is restored to its
    /// contents before each run (the passes that accumulate find what they would have found).
    /// </summary>
    public ConvAlgorithm For(ConvGeometry g, ConvPass pass, Tensor output, Action<ConvAlgorithm> run)
    {
        if (_decisions.TryGetValue((g, pass), out var known)) return known.Algorithm;
        var candidates = Candidates(g);
        Decision decision;
        string mode = _override ?? Mode;
        if (mode == "measure" && candidates.Count > 1)
        {
            var saved = CpuTensor.Span(output).ToArray();
            var timings = new List<(ConvAlgorithm, double)>();
            foreach (var a in candidates)
            {
                double best = double.MaxValue;
                for (int rep = 0; rep < 2; rep++)
                {
                    saved.CopyTo(CpuTensor.Span(output));
                    long start = Stopwatch.GetTimestamp();
                    run(a);
                    best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
                timings.Add((a, best));
            }
            saved.CopyTo(CpuTensor.Span(output));
            var fastest = timings.MinBy(t => t.Item2).Item1;
            decision = new Decision(fastest, "measured", timings);
        }
        else if (mode is "gemm" or "direct" or "winograd2" or "winograd4" && candidates.Contains(Named(mode)))
        {
            decision = new Decision(Named(mode), "pinned", []);
        }
        else
        {
            decision = new Decision(ByRule(g, pass), "rule", []);
        }
        _decisions[(g, pass)] = decision;
        return decision.Algorithm;
    }

    private static ConvAlgorithm Named(string mode) => mode switch
    {
        "direct" => ConvAlgorithm.Direct,
        "winograd2" => ConvAlgorithm.Winograd2,
        "winograd4" => ConvAlgorithm.Winograd4,
        _ => ConvAlgorithm.Gemm,
    };

    /// <summary>Forgets every decision (tests switch modes within one process).</summary>
    public void Forget() => _decisions.Clear();

    /// <summary>"16x32x32->16 3x3 s1" for reports.</summary>
    public static string Describe(ConvGeometry g) => $"{g.C}x{g.H}x{g.W}->{g.K} {g.R}x{g.S} s{g.Stride}";

    /// <summary>Lower-case name as CUDASWA_CPU_CONV spells it.</summary>
    public static string Name(ConvAlgorithm a) => a.ToString().ToLowerInvariant();

}
