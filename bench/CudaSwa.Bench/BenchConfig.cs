using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CudaSwa.Bench;

/// <summary>Short runs (these are big operations), plus a column with the achieved GB/s or GFLOP/s.</summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        Add(DefaultConfig.Instance); // loggers, exporters, analysers
        AddJob(Job.Default.WithWarmupCount(2).WithIterationCount(8).WithInvocationCount(1).WithUnrollFactor(1));
        AddColumn(new ThroughputColumn());
        WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.JoinSummary);
    }
}

/// <summary>Benchmarks that know how much work one invocation does (bytes moved or floating-point operations).</summary>
public interface IWork
{
    /// <summary>(amount, unit) for the case with these parameter values, e.g. (1.2e9, "GB/s") bytes or (3e10, "GFLOP/s") flops.</summary>
    (double Amount, string Unit) Work(string method);
}

public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "Throughput";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "bytes moved or FLOPs per second of the mean time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null) return "-";
        var instance = (IWork)Activator.CreateInstance(benchmarkCase.Descriptor.Type)!;
        foreach (var p in benchmarkCase.Parameters.Items)
            benchmarkCase.Descriptor.Type.GetProperty(p.Name)?.SetValue(instance, p.Value);
        var (amount, unit) = instance.Work(benchmarkCase.Descriptor.WorkloadMethod.Name);
        double seconds = report.ResultStatistics.Mean / 1e9;
        double scale = unit == "GB/s" || unit == "GFLOP/s" ? 1e9 : 1;
        return $"{amount / seconds / scale:F1} {unit}";
    }
}
