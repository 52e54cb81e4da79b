using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CudaSwa.Benchmarks;
using CudaSwa.IO;
using CudaSwa.Models;
using Spectre.Console;
using CudaSwa.Util;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa bench`: end-to-end throughput for users without BenchmarkDotNet.</summary>
public static class BenchCommand
{
    private static readonly Option<string> Models = new("--models") { Description = "Comma-separated models.", DefaultValueFactory = _ => "resnet20" };
    private static readonly Option<int> Batch = new("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 128 };
    private static readonly Option<int?> Steps = new("--steps") { Description = "Timed steps per repeat (default 5 on the CPU, 50 on a GPU)." };
    private static readonly Option<string?> Json = new("--json") { Description = "Also write the results (machine, device, library versions) to this JSON file." };
    private static readonly Option<string> Only = new("--only") { Description = "all; swa: only the SWA update vs copy and the SWAG collection (for models too big to train on this device); conv: every convolution shape and pass with each algorithm, beside the FMA ceiling.", DefaultValueFactory = _ => "all" };
    private static readonly Option<bool> Profile = new("--profile")
    {
        Description = "After the timed runs, run each measurement once more with every op timed (device synchronised around each op) and print where the time goes, per op.",
    };
    private static readonly Option<bool> PrepareOnly = new("--prepare-only")
    {
        Description = "Only get ready, untimed: compile (or read from the cache) every kernel, choose the cuDNN algorithms for every model's shapes, run one training step; print the choices.",
    };

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("bench", "Measure train-step, eval and BN-recompute throughput, the fused SWA update vs a plain copy, and the SWAG collection vs the SWA update.");
        foreach (var o in new Option[] { Options.SettingsTable.Device.Option, Models, Batch, Steps, Json, Options.SettingsTable.Tf32.Option, Only, Profile, PrepareOnly }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var models = p.GetValue(Models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var m in models)
                if (!ModelZoo.Models.Any(z => string.Equals(z.Name, m, StringComparison.OrdinalIgnoreCase)))
                    throw new OptionException($"--models: unknown model '{m}'; known models: {string.Join(", ", ModelZoo.Models.Select(z => z.Name))}.");
            int batch = p.GetValue(Batch);
            if (batch < 2) throw new OptionException($"--batch: must be >= 2; got {batch}.");
            string? json = p.GetValue(Json);
            string only = p.GetValue(Only)!;
            if (only is not ("all" or "swa" or "conv")) throw new OptionException($"--only: '{only}' is not valid; expected all, swa or conv.");
            using var backend = DeviceChoice.Open((Options.SettingsTable.Device.Get(p) ?? "auto").Trim().ToLowerInvariant(), Options.SettingsTable.Tf32.Get(p), out string deviceDescription);
            int steps = p.GetValue(Steps) ?? (backend is Cuda.CudaBackend ? 50 : 5);
            if (steps < 1) throw new OptionException($"--steps: must be >= 1; got {steps}.");
            env.Console.WriteLine($"cudaswa bench: {deviceDescription}");
            DeviceChoice.ForwardNotices(backend, m => env.Console.WriteLine(m));
            if (p.GetValue(PrepareOnly))
            {
                var prepared = BenchHarness.Prepare(backend, models, batch, line => env.Console.WriteLine(line));
                if (json is not null)
                {
                    AtomicFile.WriteAllText(json, prepared.ToJson());
                    env.Console.WriteLine($"wrote {json}");
                }
                return ExitCodes.Ok;
            }
            if (only == "conv")
            {
                var rates = BenchHarness.RunConvolutions(backend, models, batch, line => env.Console.WriteLine(line));
                if (json is not null)
                {
                    AtomicFile.WriteAllText(json, rates.ToJson());
                    env.Console.WriteLine($"wrote {json}");
                }
                return ExitCodes.Ok;
            }
            var report = BenchHarness.Run(backend, models, batch, steps, only == "swa", line => env.Console.WriteLine(line), p.GetValue(Profile));
            var table = new Table().AddColumn("model").AddColumn(new TableColumn("train img/s").RightAligned()).AddColumn(new TableColumn("eval img/s").RightAligned())
                .AddColumn(new TableColumn("BN recompute img/s").RightAligned()).AddColumn(new TableColumn("BN pass / epoch").RightAligned())
                .AddColumn(new TableColumn("SWA update").RightAligned()).AddColumn(new TableColumn("update GB/s").RightAligned()).AddColumn(new TableColumn("of copy GB/s").RightAligned())
                .AddColumn(new TableColumn("SWAG collect / SWA update").RightAligned());
            foreach (var r in report.Results)
                table.AddRow(r.Model, F(r.TrainImagesPerS, "F0"), F(r.EvalImagesPerS, "F0"), F(r.BnRecomputeImagesPerS, "F0"), F(r.BnRecomputeEpochFraction, "F2") + "x",
                    F(r.SwaUpdateMs, "F3") + " ms", F(r.SwaUpdateGbPerS, "F1"), F(100 * r.SwaUpdateFractionOfCopy, "F0") + "%",
                    F(r.SwagCollectOverSwaUpdate, "F2") + "x");
            env.Console.Write(table);
            if (json is not null)
            {
                AtomicFile.WriteAllText(json, report.ToJson());
                env.Console.WriteLine($"wrote {json}");
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static string F(double v, string f) => v == 0 || double.IsNaN(v) ? "-" : v.ToString(f, CultureInfo.InvariantCulture);
}
