using System.Globalization;
using CudaSwa.Training;
using Spectre.Console;

namespace CudaSwa.Cli.Output;

/// <summary>
/// What a training run shows: a live Spectre.Console progress bar per epoch (loss, accuracy,
/// images/s, ETA) on a terminal, or plain progress lines when output is redirected; one table row
/// per epoch; the final SGD vs SWA vs ensemble table. Everything shown also goes to train.log.
/// </summary>
public sealed class ConsoleReporter
{
    private readonly CliEnvironment _env;
    private readonly RunFiles _files;
    private readonly RunSettings _settings;
    private ProgressTask? _task;
    private int _epochs;
    private int _lastPlainPercent;
    /// <summary>Time since the last line written, and the phase last reported in a line (for phases without a live display).</summary>
    private readonly System.Diagnostics.Stopwatch _sinceLine = System.Diagnostics.Stopwatch.StartNew();
    private string? _linePhase;
    private bool _inEpoch;
    /// <summary>A long phase without a live display gets a line at most this often.</summary>
    private static readonly TimeSpan PhaseLineInterval = TimeSpan.FromSeconds(10);
    private string _status = "";
    private string _epochLabel = "";

    public ConsoleReporter(CliEnvironment env, RunFiles files, RunSettings settings, TrainerEvents events)
    {
        _env = env;
        _files = files;
        _settings = settings;
        Events = events;
        events.Message = Note;
        events.Progress = OnProgress;
        events.Phase = OnPhase;
    }

    public TrainerEvents Events { get; }

    private IAnsiConsole C => _env.Console;

    public void Line(string text)
    {
        C.WriteLine(text);
        _files.Log(text);
        _sinceLine.Restart();
    }

    public void Note(string text)
    {
        C.MarkupLine($"[yellow]{Markup.Escape(text)}[/]");
        _files.Log(text);
    }

    /// <summary>The epoch table's column widths (right-aligned, one space between).</summary>
    private static readonly int[] ColumnWidths = [6, 9, 9, 8, 9, 8, 9, 8, 8, 8, 8];

    /// <summary>The column heads; the average's columns carry its name (swa-, ema-, lawa-).</summary>
    public void Header(string averageName)
    {
        string avg = averageName.ToLowerInvariant();
        string[] heads = ["epoch", "lr", "train-loss", "train-acc", "test-loss", "test-acc", $"{avg}-loss", $"{avg}-acc", "ens-acc", "img/s", "seconds"];
        foreach (var line in TableLines(heads)) C.MarkupLine($"[bold]{Markup.Escape(line)}[/]");
        _files.Log(TableLines(heads, int.MaxValue)[0]);
    }

    private static string Pct(double? v) => v is null ? "-" : (100 * v.Value).ToString("F2", CultureInfo.InvariantCulture) + "%";
    private static string Num(double? v, string f = "F4") => v is null ? "-" : v.Value.ToString(f, CultureInfo.InvariantCulture);

    private void Row(EpochRecord r)
    {
        string[] cells = [$"{r.Epoch}/{_epochs}", Num(r.LearningRate, "G4"), Num(r.TrainLoss), Pct(r.TrainAccuracy),
            Num(r.Trained?.Loss), Pct(r.Trained?.Accuracy), Num(r.Average?.Loss), Pct(r.Average?.Accuracy), Pct(r.Ensemble?.Accuracy),
            Num(r.ImagesPerSecond, "F0"), Num(r.EpochSeconds, "F1")];
        foreach (var line in TableLines(cells)) C.WriteLine(line);
        _files.Log(TableLines(cells, int.MaxValue)[0]);
    }

    /// <summary>
    /// One row of the epoch table in lines no wider than the console (<paramref name="width"/>): the
    /// columns that fit on the first line, the rest on continuation lines indented past the epoch
    /// column — wrapped by whole columns, so header and rows wrap alike and no value is split.
    /// </summary>
    internal List<string> TableLines(string[] cells, int? width = null)
    {
        int max = Math.Max(width ?? C.Profile.Width, 40);
        var lines = new List<string>();
        var line = new System.Text.StringBuilder();
        for (int i = 0; i < cells.Length; i++)
        {
            string cell = cells[i].PadLeft(ColumnWidths[i]);
            if (line.Length > 0 && line.Length + 1 + cell.Length > max)
            {
                lines.Add(line.ToString());
                line.Clear().Append(' ', ColumnWidths[0]);
            }
            if (line.Length > 0) line.Append(' ');
            line.Append(cell);
        }
        lines.Add(line.ToString());
        return lines;
    }

    /// <summary>Runs the trainer's next epoch with a live progress display, then prints its row.</summary>
    public RunOutcome RunEpoch(Trainer trainer, int epochs, CancellationToken cancel)
    {
        _epochs = epochs;
        int epoch = trainer.NextEpoch;
        EpochRecord? completed = null;
        Events.EpochCompleted = r => completed = r;
        RunOutcome outcome;
        _lastPlainPercent = -1;
        _status = "";
        _epochLabel = $"epoch {epoch + 1}/{epochs}";
        _inEpoch = true;
        try
        {
            outcome = RunEpochWithProgress(trainer, epoch, epochs, cancel);
        }
        finally
        {
            _inEpoch = false;
            _linePhase = null;
        }
        if (completed is not null) Row(completed);
        return outcome;
    }

    private RunOutcome RunEpochWithProgress(Trainer trainer, int epoch, int epochs, CancellationToken cancel)
    {
        RunOutcome outcome;
        if (_env.Interactive)
        {
            outcome = C.Progress()
                .AutoClear(true)
                .HideCompleted(true)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    _task = ctx.AddTask($"epoch {epoch + 1}/{epochs}", maxValue: trainer.BatchesPerEpoch);
                    _task.Value = trainer.State.NextBatch;
                    try
                    {
                        return trainer.RunEpoch(cancel);
                    }
                    finally
                    {
                        _task.StopTask();
                        _task = null;
                    }
                });
        }
        else
        {
            outcome = trainer.RunEpoch(cancel);
        }
        return outcome;
    }

    private void OnProgress(IterationProgress p)
    {
        _status = string.Create(CultureInfo.InvariantCulture,
            $"epoch {p.Epoch + 1}/{_epochs}  loss {p.Loss:F3}  acc {100 * p.Accuracy:F1}%  {p.ImagesPerSecond:F0} img/s  lr {p.LearningRate:G3}");
        if (_task is not null)
        {
            _task.Description = _status;
            _task.Value = p.Batch;
            return;
        }
        // Plain mode: a line at every 25% of an epoch.
        int percent = (int)(100.0 * p.Batch / p.Batches);
        if (percent / 25 > _lastPlainPercent / 25 && percent < 100)
        {
            _lastPlainPercent = percent;
            Line($"  {_status}  ({percent}%)");
        }
    }

    private void OnPhase(PhaseProgress p)
    {
        var (phase, done, total) = (p.Name, p.Done, p.Total);
        string what = phase switch
        {
            "bn-recompute" => $"recomputing BN statistics of the averaged model {done}/{total}",
            "swa-test" => "testing the averaged model",
            "test" => "testing the SGD model",
            "checkpoint" => "saving checkpoint",
            "swag-sample" => $"SWAG model average: sample {Math.Min(done + 1, total)}/{total} (BN recompute and test)",
            _ => phase,
        };
        if (_task is not null)
        {
            _task.Description = $"{_epochLabel}  {what}";
            return;
        }
        // No live display (output redirected, or the final results after the last epoch): a phase
        // with steps gets a line when it starts outside an epoch, and one at most every 10 s, so
        // train.log and a redirected console show where a long phase (SWAG's model average, a
        // paper-sized BN recompute) stands without a line per step.
        if (total <= 1 || done >= total) return;
        bool starts = !_inEpoch && phase != _linePhase;
        if (starts || _sinceLine.Elapsed >= PhaseLineInterval)
        {
            _linePhase = phase;
            Line($"  {(_inEpoch ? _epochLabel + "  " : "")}{what}");
        }
    }

    /// <summary>Widest console the final table shows its notes in; narrower consoles get them as lines under it.</summary>
    private const int WideTable = 110;

    public void Results(RunSummary summary)
    {
        // At terminal widths the table keeps to numbers with short heads and the notes follow as
        // text lines, which wrap at spaces: a squeezed table column would break words.
        bool wide = C.Profile.Width >= WideTable;
        var table = new Table().Title($"[bold]{Markup.Escape(summary.Model)}: final test results[/]")
            .AddColumn("method").AddColumn(new TableColumn(wide ? "test accuracy" : "accuracy").RightAligned()).AddColumn(new TableColumn(wide ? "test error" : "error").RightAligned())
            .AddColumn(new TableColumn(wide ? "test loss (NLL)" : "NLL").RightAligned()).AddColumn(new TableColumn("ECE").RightAligned())
            .AddColumn(new TableColumn("Brier").RightAligned());
        if (wide) table.AddColumn("note");
        foreach (var r in summary.Results)
        {
            var cells = new List<string> { Markup.Escape(r.Method), Pct(r.TestAccuracy), r.TestAccuracy is null ? "-" : Pct(1 - r.TestAccuracy), Num(r.TestLoss),
                Pct(r.Calibration?.Ece), Num(r.Calibration?.Brier) };
            if (wide) cells.Add(Markup.Escape(r.Note));
            table.AddRow(cells.ToArray());
        }
        C.Write(table);
        if (!wide)
            foreach (var r in summary.Results.Where(r => !string.IsNullOrEmpty(r.Note)))
                C.WriteLine($"{r.Method}: {r.Note}");
        Line("NLL: mean negative log-likelihood of the true class; ECE: expected calibration error over 15 confidence bins " +
             "(0% = the predicted confidence matches the accuracy, see calibration.png); Brier: mean squared error of the predicted probabilities.");
        _files.Log("final results:");
        foreach (var r in summary.Results)
            _files.Log($"  {r.Method,-9} acc {Pct(r.TestAccuracy),8}  loss {Num(r.TestLoss),8}  ECE {Pct(r.Calibration?.Ece),7}  Brier {Num(r.Calibration?.Brier),7}  {r.Note}");
        var t = TimeSpan.FromSeconds(summary.TotalSeconds);
        string files = _settings.Training.Averaging ? "metrics.csv, summary.json, curves.png, calibration.png, model.safetensors and swa.safetensors" : "metrics.csv, summary.json, curves.png, calibration.png and model.safetensors";
        Line($"{Wording.Count(summary.EpochsCompleted, "epoch")} in {(int)t.TotalHours}:{t:mm\\:ss}; {files} are in {_files.OutDir}");
    }
}
