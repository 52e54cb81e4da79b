using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>The files a run leaves in --out besides checkpoints: train.log, metrics.csv, summary.json.</summary>
public sealed class RunFiles : IDisposable
{
    private readonly StreamWriter _log;

    public RunFiles(string outDir, bool append)
    {
        OutDir = outDir;
        _log = new StreamWriter(Path.Combine(outDir, "train.log"), append, new UTF8Encoding(false)) { AutoFlush = true };
        if (append) _log.WriteLine($"---- resumed {DateTime.Now:yyyy-MM-dd HH:mm:ss}");
    }

    public string OutDir { get; }

    public void Log(string line) => _log.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");

    public static string Csv(double? v) => v is null ? "" : v.Value.ToString("G6", CultureInfo.InvariantCulture);

    public void WriteMetrics(IReadOnlyList<EpochRecord> history)
    {
        var sb = new StringBuilder();
        sb.AppendLine("epoch,lr,train_loss,train_acc,test_loss,test_acc,swa_models,swa_test_loss,swa_test_acc,ensemble_snapshots,ensemble_test_loss,ensemble_test_acc,train_seconds,bn_recompute_seconds,epoch_seconds,images_per_second,test_ece,test_brier,swa_test_ece,swa_test_brier,ensemble_test_ece,ensemble_test_brier");
        foreach (var r in history)
            sb.AppendLine(string.Join(",", r.Epoch.ToString(CultureInfo.InvariantCulture), Csv(r.LearningRate), Csv(r.TrainLoss), Csv(r.TrainAccuracy),
                Csv(r.TestLoss), Csv(r.TestAccuracy), r.AveragedModels.ToString(CultureInfo.InvariantCulture), Csv(r.SwaTestLoss), Csv(r.SwaTestAccuracy),
                r.EnsembleSnapshots.ToString(CultureInfo.InvariantCulture), Csv(r.EnsembleTestLoss), Csv(r.EnsembleTestAccuracy),
                Csv(r.TrainSeconds), Csv(r.BnRecomputeSeconds), Csv(r.EpochSeconds), Csv(r.ImagesPerSecond),
                Csv(r.TestEce), Csv(r.TestBrier), Csv(r.SwaTestEce), Csv(r.SwaTestBrier), Csv(r.EnsembleTestEce), Csv(r.EnsembleTestBrier)));
        AtomicFile.WriteAllText(Path.Combine(OutDir, "metrics.csv"), sb.ToString());
    }

    /// <summary>The run's final table and options (its outcome included).</summary>
    public const string SummaryFile = "summary.json";

    public void WriteSummary(RunSummary summary) =>
        AtomicFile.WriteAllText(Path.Combine(OutDir, SummaryFile), JsonSerializer.Serialize(summary, CliJsonContext.Default.RunSummary));

    public void Dispose() => _log.Dispose();
}
