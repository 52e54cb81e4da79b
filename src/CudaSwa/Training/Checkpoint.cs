using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Training;

/// <summary>
/// Crash-safe checkpoints. Each save writes a fresh folder checkpoints/after-epoch-E-K/ at an epoch's
/// end or checkpoints/epoch-E-batch-B-K/ inside epoch E (B batches done; E counted from 1, as the console counts) (model,
/// optimizer momentum, SWA average, ensemble predictions) under a temporary name, renames it into
/// place, and only then replaces state.json (atomically) to point at it: state.json always names
/// a complete folder, whatever moment a crash hits. Older folders are removed afterwards, and the
/// user-facing model.safetensors / swa.safetensors at the top of the run folder are refreshed.
/// </summary>
public static class Checkpoint
{
    /// <summary>The file at the top of a run folder that records where the run stands and names the current checkpoint folder.</summary>
    public const string StateFile = "state.json";
    /// <summary>Weights and BN statistics of the SGD model, in each checkpoint folder and at the top of the run folder.</summary>
    public const string ModelFile = "model.safetensors";
    /// <summary>Weights and BN statistics of the averaged model, once a model was averaged; also at the top of the run folder.</summary>
    public const string SwaFile = "swa.safetensors";
    /// <summary>The SGD momentum buffers, named "momentum." + parameter name.</summary>
    public const string OptimizerFile = "optimizer.safetensors";
    /// <summary>
    /// SWAG's moments beside the mean in swa.safetensors: square_mean.&lt;parameter&gt; (the running
    /// mean of squares) and deviations.&lt;parameter&gt; of shape [rank, ...], row k being ring slot k;
    /// metadata records count, rank and next_slot (the row the next collection overwrites; once
    /// the ring is full, rows in collection order start there).
    /// </summary>
    public const string SwagFile = SwagMoments.CheckpointFile;

    /// <summary>The ensemble's averaged test-set predictions (tensor mean_probabilities), once a snapshot was taken.</summary>
    public const string EnsembleFile = "ensemble.safetensors";
    private const string MomentumPrefix = "momentum.";

    private static Dictionary<string, string> Metadata(Network network, TrainingState state, string what) => new()
    {
        ["format"] = "pt",
        ["producer"] = "cudaswa",
        ["model"] = network.ModelName,
        ["classes"] = network.NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["content"] = what,
        ["next_epoch"] = state.NextEpoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["next_batch"] = state.NextBatch.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The folder of a run that keeps each epoch's SGD weights (<see cref="TrainingOptions.SaveEpochWeights"/>).</summary>
    public const string EpochWeightsFolder = "epochs";

    /// <summary>The SGD weights after epoch <paramref name="epoch"/> (counted from 1, as the console counts): epochs/epoch-NNNN.safetensors.</summary>
    public static string EpochWeightsFile(string runDir, int epoch) =>
        Path.Combine(runDir, EpochWeightsFolder, $"epoch-{epoch.ToString("D4", System.Globalization.CultureInfo.InvariantCulture)}.safetensors");

    /// <summary>Writes the network's own weights and BN statistics after the epoch <paramref name="state"/> ends (atomically).</summary>
    internal static void SaveEpochWeights(string runDir, TrainingState state, Network network)
    {
        var meta = Metadata(network, state, $"SGD model after epoch {state.NextEpoch}");
        meta["epoch"] = state.NextEpoch.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ModelWeights.Save(EpochWeightsFile(runDir, state.NextEpoch), network.OwnParameters, network.OwnBuffers, meta);
    }

    /// <summary>Writes a checkpoint and returns the committed state (pointing at its folder).</summary>
    /// <param name="outDir">The run folder; checkpoints go to its checkpoints/ subfolder.</param>
    /// <param name="state">The position and history to record.</param>
    /// <param name="network">The network whose own parameters and BN statistics are saved.</param>
    /// <param name="sgd">The optimizer whose momentum buffers are saved.</param>
    /// <param name="averager">The weight averager; its average is saved once a model was averaged (null: none).</param>
    /// <param name="ensemble">The prediction ensemble; its mean predictions are saved once a snapshot was taken (null: none).</param>
    /// <param name="swaStatistics">Where the SWA model's BN statistics come from, stored in swa.safetensors' metadata
    /// (between evaluations they belong to an earlier average).</param>
    public static TrainingState Save(string outDir, TrainingState state, Network network, Sgd sgd, WeightAverager? averager, PredictionEnsemble? ensemble,
        string swaStatistics = "") => Save(outDir, state, network, sgd, averager, ensemble, swaStatistics, keepPrevious: false);

    /// <summary>
    /// <see cref="Save(string, TrainingState, Network, Sgd, WeightAverager?, PredictionEnsemble?, string)"/>;
    /// with <paramref name="keepPrevious"/> the checkpoint committed before stays too (named in
    /// <see cref="TrainingState.PreviousCheckpointFolder"/>) so <see cref="RollBack"/> can return to it.
    /// </summary>
    internal static TrainingState Save(string outDir, TrainingState state, Network network, Sgd sgd, WeightAverager? averager, PredictionEnsemble? ensemble,
        string swaStatistics, bool keepPrevious, BatchNormRecomputePass? swaRecomputed = null)
    {
        string root = Path.Combine(outDir, "checkpoints");
        Directory.CreateDirectory(root);
        int serial = Directory.GetDirectories(root).Length;
        string name;
        // Named as the console counts epochs (from 1): the end of epoch E, or B batches into epoch E.
        do name = state.NextBatch == 0 ? $"after-epoch-{state.NextEpoch:D4}-{serial++}" : $"epoch-{state.NextEpoch + 1:D4}-batch-{state.NextBatch:D5}-{serial++}";
        while (Directory.Exists(Path.Combine(root, name)));
        // The folder committed until now stays as the previous one where asked (and where it is this run folder's own).
        string? previous = keepPrevious && state.CheckpointFolder != "" && Directory.Exists(Path.Combine(outDir, state.CheckpointFolder))
            ? state.CheckpointFolder : null;
        var committed = state with { CheckpointFolder = Path.Combine("checkpoints", name), SavedAt = DateTime.UtcNow.ToString("o"), PreviousCheckpointFolder = previous };
        string temp = Path.Combine(root, $"{TempFolderPrefix}{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        FileEvents.Hit("checkpoint folder created", temp);
        try
        {
            // Each checkpoint folder carries the state that commits it, so a rollback can make it current again.
            // (Written straight, flushed to disk: the folder's rename below is what makes it appear.)
            using (var stream = new FileStream(Path.Combine(temp, StateFile), FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(committed.ToJson()));
                stream.Flush(flushToDisk: true);
            }
            ModelWeights.Save(Path.Combine(temp, ModelFile), network.OwnParameters, network.OwnBuffers, Metadata(network, state, "SGD model"));
            SafeTensors.Write(Path.Combine(temp, OptimizerFile), ModelWeights.Entries(network.ParameterLayout, sgd.Velocity.ToHost(), MomentumPrefix),
                Metadata(network, state, "SGD momentum buffers"));
            if (averager is not null && averager.Count > 0)
            {
                var p = averager.ParametersToHost();
                var b = averager.Buffers.ToHost();
                var meta = Metadata(network, state, $"{averager.Method.Name} {averager.Method.DescribeAverage(averager.Count, averager.State)}");
                meta["bn_statistics"] = averager.Options.AverageBatchNormStatistics ? "averaged with the weights" : swaStatistics;
                // Exactly how they were recomputed, so `cudaswa eval --bn-recompute` can repeat it.
                if (!averager.Options.AverageBatchNormStatistics) swaRecomputed?.WriteTo(meta);
                SafeTensors.Write(Path.Combine(temp, SwaFile), ModelWeights.Entries(network.ParameterLayout, p).Concat(ModelWeights.Entries(network.BufferLayout, b)), meta);
            }
            if (averager?.State is { Count: > 0 } kept)
            {
                var meta = Metadata(network, state, kept.Describe());
                foreach (var (key, value) in kept.Metadata()) meta[key] = value;
                SafeTensors.Write(Path.Combine(temp, kept.FileName), kept.Entries(network.ParameterLayout), meta);
            }
            if (ensemble is not null && ensemble.Count > 0)
            {
                var mean = ensemble.Export();
                SafeTensors.Write(Path.Combine(temp, EnsembleFile),
                    [new SafeTensors.Entry("mean_probabilities", [mean.Length / network.NumClasses, network.NumClasses], mean)],
                    Metadata(network, state, $"mean test-set predictions of {ensemble.Count} snapshots"));
            }
            Directory.Move(temp, Path.Combine(root, name));
            FileEvents.Hit("checkpoint folder renamed into place", name);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }

        AtomicFile.WriteAllText(Path.Combine(outDir, StateFile), committed.ToJson());

        RemoveStale(outDir, committed);
        PublishOutputs(outDir, committed);
        return committed;
    }

    private const string TempFolderPrefix = ".tmp-";

    /// <summary>Everything in the run folder that the committed state does not use: older checkpoint folders, half-written ones, temporary files.</summary>
    public static void RemoveStale(string outDir, TrainingState committed)
    {
        string root = Path.Combine(outDir, "checkpoints");
        string keep = Path.GetFileName(committed.CheckpointFolder);
        string? keepToo = committed.PreviousCheckpointFolder is { } previous ? Path.GetFileName(previous) : null;
        if (Directory.Exists(root))
            foreach (var dir in Directory.GetDirectories(root))
                if (Path.GetFileName(dir) != keep && Path.GetFileName(dir) != keepToo)
                {
                    try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
                    FileEvents.Hit("stale folder removed", dir);
                }
        foreach (var tmp in Directory.GetFiles(outDir, "." + "*" + AtomicFile.TempSuffix))
        {
            try { File.Delete(tmp); } catch (IOException) { }
            FileEvents.Hit("stale temporary file removed", tmp);
        }
    }

    /// <summary>
    /// The user-facing model.safetensors, swa.safetensors (and swag.safetensors) at the top of the run folder, copied
    /// from the committed checkpoint (each atomically). Done after every commit, and again by a
    /// resume, so a crash between the commit and these copies cannot leave them behind the state.
    /// </summary>
    public static void PublishOutputs(string outDir, TrainingState committed)
    {
        string folder = Path.Combine(outDir, committed.CheckpointFolder);
        CopyAtomically(Path.Combine(folder, ModelFile), Path.Combine(outDir, ModelFile));
        foreach (var file in new[] { SwaFile, SwagFile })
            if (File.Exists(Path.Combine(folder, file)))
                CopyAtomically(Path.Combine(folder, file), Path.Combine(outDir, file));
    }

    private static void CopyAtomically(string from, string to) => AtomicFile.Write(to, s =>
    {
        using var src = File.OpenRead(from);
        src.CopyTo(s);
    });

    /// <summary>
    /// The state that committed <paramref name="state"/>'s previous checkpoint (kept by a save with
    /// keepPrevious), or null where none is kept or it is incomplete.
    /// </summary>
    internal static TrainingState? ReadPrevious(string runDir, TrainingState state)
    {
        if (state.PreviousCheckpointFolder is not { } previous) return null;
        string folder = Path.Combine(runDir, previous), path = Path.Combine(folder, StateFile);
        if (!File.Exists(path) || !File.Exists(Path.Combine(folder, ModelFile)) || !File.Exists(Path.Combine(folder, OptimizerFile))) return null;
        try { return TrainingState.FromJson(File.ReadAllText(path), path); }
        catch (DataFormatException) { return null; } // a damaged previous checkpoint only means there is none to go back to
    }

    /// <summary>
    /// Makes the checkpoint before <paramref name="state"/>'s the committed one again (state.json
    /// replaced atomically, the later checkpoint removed, the files at the top of the folder
    /// republished) and returns its state. Throws when none is kept.
    /// </summary>
    internal static TrainingState RollBack(string runDir, TrainingState state)
    {
        var previous = ReadPrevious(runDir, state)
            ?? throw new DataFormatException($"'{Path.Combine(runDir, StateFile)}' keeps no complete checkpoint before its current one to go back to.");
        AtomicFile.WriteAllText(Path.Combine(runDir, StateFile), previous.ToJson());
        RemoveStale(runDir, previous);
        PublishOutputs(runDir, previous);
        return previous;
    }

    /// <summary>Reads state.json of a run folder (for --resume), with errors that name the file.</summary>
    public static TrainingState ReadState(string runDir)
    {
        string path = Path.Combine(runDir, StateFile);
        if (!Directory.Exists(runDir)) throw new DataFormatException($"Run folder '{runDir}' does not exist.");
        if (!File.Exists(path)) throw new DataFormatException($"Run folder '{runDir}' has no {StateFile}: it is not a cudaswa run folder, or the run never finished an epoch.");
        var state = TrainingState.FromJson(File.ReadAllText(path), path);
        string folder = Path.Combine(runDir, state.CheckpointFolder);
        if (!File.Exists(Path.Combine(folder, ModelFile)) || !File.Exists(Path.Combine(folder, OptimizerFile)))
            throw new DataFormatException($"'{path}' points at checkpoint '{folder}', which is missing or incomplete.");
        return state;
    }

    /// <summary>Loads the weights, momentum, average and ensemble of a saved state.</summary>
    public static void Restore(string runDir, TrainingState state, Network network, Sgd sgd, WeightAverager? averager, PredictionEnsemble? ensemble)
    {
        string folder = Path.Combine(runDir, state.CheckpointFolder);
        ModelWeights.Load(SafeTensors.Read(Path.Combine(folder, ModelFile)), network.OwnParameters, network.OwnBuffers, Path.Combine(folder, ModelFile), requireBuffers: true);

        var momentum = SafeTensors.Read(Path.Combine(folder, OptimizerFile));
        var velocity = new float[sgd.Velocity.All.Length];
        foreach (var e in network.ParameterLayout.Entries)
        {
            if (!momentum.Tensors.TryGetValue(MomentumPrefix + e.Name, out var t) || t.Data.Length != e.Length)
                throw new DataFormatException($"'{Path.Combine(folder, OptimizerFile)}' lacks {MomentumPrefix}{e.Name} with shape {e.Shape}.");
            t.Data.CopyTo(velocity.AsSpan((int)e.Offset));
        }
        sgd.Velocity.FromHost(velocity);

        if (averager is not null && state.AveragedModels > 0)
        {
            string path = Path.Combine(folder, SwaFile);
            if (!File.Exists(path)) throw new DataFormatException($"'{path}' is missing although {state.AveragedModels} models were averaged.");
            using var scratchParams = network.CreateParameterArena();
            using var scratchBuffers = network.CreateBufferArena();
            ModelWeights.Load(SafeTensors.Read(path), scratchParams, scratchBuffers, path);
            averager.Restore(scratchParams.ToHost(), scratchBuffers.ToHost(), state.AveragedModels);
        }
        if (averager?.State is { } saved && state.AveragedModels > 0)
        {
            string path = Path.Combine(folder, saved.FileName);
            if (!File.Exists(path)) throw new DataFormatException($"'{path}' is missing although {state.AveragedModels} models were averaged.");
            saved.Restore(SafeTensors.Read(path), network.ParameterLayout, state.AveragedModels, path);
        }
        if (ensemble is not null && state.EnsembleSnapshots > 0)
        {
            string path = Path.Combine(folder, EnsembleFile);
            if (!File.Exists(path)) throw new DataFormatException($"'{path}' is missing although {state.EnsembleSnapshots} snapshots were ensembled.");
            var t = SafeTensors.Read(path).Tensors;
            if (!t.TryGetValue("mean_probabilities", out var mean))
                throw new DataFormatException($"'{path}' lacks the tensor mean_probabilities.");
            ensemble.Restore(mean.Data, state.EnsembleSnapshots);
        }
    }
}
