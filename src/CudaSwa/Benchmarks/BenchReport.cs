using System.Text.Json.Serialization;

namespace CudaSwa.Benchmarks;

/// <summary>One model's end-to-end numbers (the same fields bench/pytorch/bench_torch.py writes).</summary>
public sealed record ModelBench
{
    /// <summary>The model measured (a <see cref="Models.ModelZoo"/> name).</summary>
    public string Model { get; init; } = "";
    /// <summary>Its number of trainable parameters.</summary>
    public long Params { get; init; }
    /// <summary>The batch size of every measurement.</summary>
    public int Batch { get; init; }
    /// <summary>Training throughput: images per second through forward, backward and the SGD step.</summary>
    public double TrainImagesPerS { get; init; }
    /// <summary>Evaluation throughput: images per second through the inference-mode forward pass.</summary>
    public double EvalImagesPerS { get; init; }
    /// <summary>BN-recompute throughput: images per second through the statistics-gathering forward pass.</summary>
    public double BnRecomputeImagesPerS { get; init; }
    /// <summary>Time of the BN-recompute pass over the training set divided by a training epoch's time.</summary>
    public double BnRecomputeEpochFraction { get; init; }
    /// <summary>One fused SWA update of every parameter, in milliseconds.</summary>
    public double SwaUpdateMs { get; init; }
    /// <summary>The SWA update's bandwidth: bytes read and written per second, in GB/s.</summary>
    public double SwaUpdateGbPerS { get; init; }
    /// <summary>A device copy of the same bytes, in milliseconds (the SWA update's baseline).</summary>
    public double CopyMs { get; init; }
    /// <summary>The copy's bandwidth in GB/s.</summary>
    public double CopyGbPerS { get; init; }
    /// <summary>The SWA update's time divided by the copy's.</summary>
    public double SwaUpdateFractionOfCopy { get; init; }
    /// <summary>The SWAG collection pass (mean, mean of squares, one deviation column) over the same arena.</summary>
    public double SwagCollectMs { get; init; }
    /// <summary>SWAG collection time divided by the SWA update's (it moves twice the bytes).</summary>
    public double SwagCollectOverSwaUpdate { get; init; }
    /// <summary>One SWAG sample with a full ring of 20 deviation columns.</summary>
    public double SwagSampleMs { get; init; }
    /// <summary>The sample's time divided by a copy's of the same bytes (mean, mean of squares, 20 columns read, the sample written) at the copy's measured bandwidth.</summary>
    public double SwagSampleOverCopyOfItsBytes { get; init; }
}

/// <summary>What `cudaswa bench` measured, on which device and with which libraries; written as bench JSON.</summary>
public sealed record BenchReport
{
    /// <summary>The program that measured: "cudaswa" (PyTorch's script writes "pytorch").</summary>
    public string Tool { get; init; } = "cudaswa";
    /// <summary>"cuda" or "cpu".</summary>
    public string Device { get; init; } = "";
    /// <summary>The device's name (the GPU's, or the CPU backend's description).</summary>
    public string DeviceName { get; init; } = "";
    /// <summary>Cores, operating system and architecture of the machine.</summary>
    public string Machine { get; init; } = "";
    /// <summary>Versions (and paths) of the runtime and of the libraries used.</summary>
    public Dictionary<string, string> Libraries { get; init; } = new();
    /// <summary>When the measurement ran, UTC.</summary>
    public string Date { get; init; } = "";
    /// <summary>How the figures were taken (repeats, steps, batch, data).</summary>
    public string Method { get; init; } = "";
    /// <summary>One entry per model measured.</summary>
    public List<ModelBench> Results { get; init; } = [];

    /// <summary>On a GPU: the cuDNN algorithms chosen per convolution shape (deterministic and stable only).</summary>
    public List<ConvolutionAlgorithm> ConvolutionAlgorithms { get; init; } = [];

    /// <summary>`--only conv`: every convolution shape and pass, each algorithm's rate.</summary>
    public List<ConvolutionRate> Convolutions { get; init; } = [];

    /// <summary>`--only conv` on the CPU: the measured FMA ceiling of all cores in GFLOP/s (0 elsewhere).</summary>
    public double FmaPeakGflops { get; init; }

    /// <summary>How <see cref="FmaPeakGflops"/> was reached (vector width, workers).</summary>
    public string FmaPeakWidth { get; init; } = "";

    /// <summary>The report as bench JSON (indented snake_case, the fields bench/pytorch/bench_torch.py writes).</summary>
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, BenchJsonContext.Default.BenchReport);
}

/// <summary>One convolution shape's cuDNN algorithms.</summary>
/// <param name="Shape">The convolution: input, filter, stride and padding.</param>
/// <param name="Forward">The forward algorithm chosen.</param>
/// <param name="BackwardData">The backward-data algorithm chosen.</param>
/// <param name="BackwardFilter">The backward-filter algorithm chosen.</param>
/// <param name="WorkspaceBytes">The workspace the three need together.</param>
/// <param name="Note">Which direction fell back from the preferred algorithms, if any (else empty).</param>
public sealed record ConvolutionAlgorithm(string Shape, string Forward, string BackwardData, string BackwardFilter, long WorkspaceBytes, string Note);

/// <summary>The bench JSON format: indented snake_case.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
