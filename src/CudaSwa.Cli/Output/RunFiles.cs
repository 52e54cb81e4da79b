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

    /// <summary>metrics.csv, one row per epoch; the average's columns carry its name (swa_, ema_, lawa_), in the same places for every method.</summary>
    public void WriteMetrics(IReadOnlyList<EpochRecord> history, string averageName)
    {
        string a = averageName.ToLowerInvariant();
        var sb = new StringBuilder();
        sb.AppendLine($"epoch,lr,train_loss,train_acc,test_loss,test_acc,{a}_models,{a}_test_loss,{a}_test_acc,ensemble_snapshots,ensemble_test_loss,ensemble_test_acc,train_seconds,bn_recompute_seconds,epoch_seconds,images_per_second,test_ece,test_brier,{a}_test_ece,{a}_test_brier,ensemble_test_ece,ensemble_test_brier");
        foreach (var r in history)
            sb.AppendLine(string.Join(",", r.Epoch.ToString(CultureInfo.InvariantCulture), Csv(r.LearningRate), Csv(r.TrainLoss), Csv(r.TrainAccuracy),
                Csv(r.Trained?.Loss), Csv(r.Trained?.Accuracy), r.AveragedModels.ToString(CultureInfo.InvariantCulture), Csv(r.Average?.Loss), Csv(r.Average?.Accuracy),
                r.EnsembleSnapshots.ToString(CultureInfo.InvariantCulture), Csv(r.Ensemble?.Loss), Csv(r.Ensemble?.Accuracy),
                Csv(r.TrainSeconds), Csv(r.BnRecomputeSeconds), Csv(r.EpochSeconds), Csv(r.ImagesPerSecond),
                Csv(r.Trained?.Ece), Csv(r.Trained?.Brier), Csv(r.Average?.Ece), Csv(r.Average?.Brier), Csv(r.Ensemble?.Ece), Csv(r.Ensemble?.Brier)));
        AtomicFile.WriteAllText(Path.Combine(OutDir, "metrics.csv"), sb.ToString());
    }

    /// <summary>The run's final table and options (its outcome included).</summary>
    public const string SummaryFile = "summary.json";

    public void WriteSummary(RunSummary summary) =>
        AtomicFile.WriteAllText(Path.Combine(OutDir, SummaryFile), JsonSerializer.Serialize(summary, CliJsonContext.Default.RunSummary));

    public void Dispose() => _log.Dispose();
}
