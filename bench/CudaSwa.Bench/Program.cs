using BenchmarkDotNet.Running;

// BenchmarkDotNet suite: dotnet run -c Release --project bench/CudaSwa.Bench -- --filter '*SwaUpdate*'
// CPU always; CUDA cases appear when a GPU is usable (they synchronise inside each benchmark).
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new CudaSwa.Bench.BenchConfig());

public partial class Program;
