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
        string swaStatistics = "") => Save(outDir, state, network, sgd, averager, ensemble, swaStatistics, keepPrevious: true);

    /// <summary>
    /// <see cref="Save(string, TrainingState, Network, Sgd, WeightAverager?, PredictionEnsemble?, string)"/>;
    /// with <paramref name="keepPrevious"/> (every run does) the checkpoint committed before stays too
    /// (named in <see cref="TrainingState.PreviousCheckpointFolder"/>): a resume falls back to it when
    /// the newer one is damaged, and <see cref="RollBack"/> returns to it.
    /// </summary>
    internal static TrainingState Save(string outDir, TrainingState state, Network network, Sgd sgd, WeightAverager? averager, PredictionEnsemble? ensemble,
        string swaStatistics, bool keepPrevious, BatchNormRecomputePass? swaRecomputed = null)
    {
        string root = Path.Combine(outDir, "checkpoints");
        int serial = Directory.Exists(root) ? Directory.GetDirectories(root).Length : 0;
        string name;
        // Named as the console counts epochs (from 1): the end of epoch E, or B batches into epoch E.
        do name = state.NextBatch == 0 ? $"after-epoch-{state.NextEpoch:D4}-{serial++}" : $"epoch-{state.NextEpoch + 1:D4}-batch-{state.NextBatch:D5}-{serial++}";
        while (Directory.Exists(Path.Combine(root, name)));
        // The folder committed until now stays as the previous one where asked (and where it is this run folder's own).
        string? previous = keepPrevious && state.CheckpointFolder != "" && Directory.Exists(Path.Combine(outDir, state.CheckpointFolder))
            ? state.CheckpointFolder : null;
        var committed = state with { CheckpointFolder = Path.Combine("checkpoints", name), SavedAt = DateTime.UtcNow.ToString("o"), PreviousCheckpointFolder = previous };
        // Everything the checkpoint writes, gathered first: its size is checked against the free
        // space before anything is touched.
        var files = new List<(string File, List<SafeTensors.Entry> Entries, Dictionary<string, string> Meta)>
        {
            (ModelFile, ModelWeights.Entries(network.OwnParameters, network.OwnBuffers).ToList(), Metadata(network, state, "SGD model")),
            (OptimizerFile, ModelWeights.Entries(network.ParameterLayout, sgd.Velocity.ToHost(), MomentumPrefix).ToList(), Metadata(network, state, "SGD momentum buffers")),
        };
        if (averager is not null && averager.Count > 0)
        {
            var p = averager.ParametersToHost();
            var b = averager.Buffers.ToHost();
            var meta = Metadata(network, state, $"{averager.Method.Name} {averager.Method.DescribeAverage(averager.Count, averager.State)}");
            meta["bn_statistics"] = averager.Options.AverageBatchNormStatistics ? "averaged with the weights" : swaStatistics;
            // Exactly how they were recomputed, so `cudaswa eval --bn-recompute` can repeat it.
            if (!averager.Options.AverageBatchNormStatistics) swaRecomputed?.WriteTo(meta);
            files.Add((SwaFile, ModelWeights.Entries(network.ParameterLayout, p).Concat(ModelWeights.Entries(network.BufferLayout, b)).ToList(), meta));
        }
        if (averager?.State is { Count: > 0 } kept)
        {
            var meta = Metadata(network, state, kept.Describe());
            foreach (var (key, value) in kept.Metadata()) meta[key] = value;
            files.Add((kept.FileName, kept.Entries(network.ParameterLayout).ToList(), meta));
        }
        if (ensemble is not null && ensemble.Count > 0)
        {
            var mean = ensemble.Export();
            files.Add((EnsembleFile, [new SafeTensors.Entry("mean_probabilities", [mean.Length / network.NumClasses, network.NumClasses], mean)],
                Metadata(network, state, $"mean test-set predictions of {ensemble.Count} snapshots")));
        }
        CheckFreeSpace(outDir, state, files.Select(f => (f.File, f.Entries.Sum(e => (long)e.Data.Length * sizeof(float)), f.Entries.Count)).ToList());

        Directory.CreateDirectory(root);
        string temp = Path.Combine(root, $"{TempFolderPrefix}{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        FileEvents.Hit("checkpoint folder created", temp);
        try
        {
            foreach (var (file, entries, meta) in files)
                SafeTensors.Write(Path.Combine(temp, file), entries, meta);
            // The state that commits the folder lists every file with its hash, and is sealed itself:
            // a resume checks both before it trusts anything here.
            committed = committed with
            {
                Files = Directory.GetFiles(temp).Order(StringComparer.Ordinal)
                    .ToDictionary(f => Path.GetFileName(f), CheckpointIntegrity.Digest, StringComparer.Ordinal),
            };
            // Each checkpoint folder carries the state that commits it, so a rollback or a fallback can make it current again.
            // (Written straight, flushed to disk: the folder's rename below is what makes it appear.)
            using (var stream = new FileStream(Path.Combine(temp, StateFile), FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(CheckpointIntegrity.Seal(committed.ToJson())));
                stream.Flush(flushToDisk: true);
            }
            Directory.Move(temp, Path.Combine(root, name));
            FileEvents.Hit("checkpoint folder renamed into place", name);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }

        AtomicFile.WriteAllText(Path.Combine(outDir, StateFile), CheckpointIntegrity.Seal(committed.ToJson()));

        RemoveStale(outDir, committed);
        PublishOutputs(outDir, committed);
        return committed;
    }

    private const string TempFolderPrefix = ".tmp-";

    /// <summary>Tests only: the free bytes to assume for a folder instead of asking the file system.</summary>
    internal static Func<string, long>? FreeSpaceForTests { get => s_freeForTests.Value; set => s_freeForTests.Value = value; }
    private static readonly AsyncLocal<Func<string, long>?> s_freeForTests = new();

    /// <summary>Room for a file's header beyond its tensors' bytes: its metadata, and each tensor's entry.</summary>
    private static long HeaderAllowance(int tensors) => (16 << 10) + 256L * tensors;

    /// <summary>
    /// Refuses a checkpoint the disk cannot hold, before anything is written: the new generation
    /// (every file) plus fresh copies of the outputs at the top of the run folder must fit in the
    /// free space; the committed checkpoint stays the committed one.
    /// </summary>
    private static void CheckFreeSpace(string outDir, TrainingState state, List<(string File, long Bytes, int Tensors)> files)
    {
        // The new generation, its two state files (each about as large as the run's history), and fresh copies of the published outputs.
        long stateBytes = 2 * (64 << 10) + 2 * 2048L * state.History.Count;
        long needed = files.Sum(f => f.Bytes + HeaderAllowance(f.Tensors)) + stateBytes
                      + files.Where(f => f.File is ModelFile or SwaFile or SwagFile).Sum(f => f.Bytes + HeaderAllowance(f.Tensors));
        long free;
        try { free = FreeSpaceForTests?.Invoke(outDir) ?? new DriveInfo(Path.GetFullPath(outDir)).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return; } // cannot tell: the write itself will say
        if (free >= needed) return;
        string next = state.CheckpointFolder == ""
            ? "No checkpoint was committed yet."
            : $"The last committed checkpoint ({state.CheckpointFolder}) is intact and untouched; the run can also be resumed from a copy of its folder on a larger disk.";
        throw new InsufficientSpaceException(
            $"The checkpoint needs about {Mib(needed)} in '{Path.GetFullPath(outDir)}', which has {Mib(free)} free: nothing was written. {next}", needed, free);
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):N1} MiB";

    /// <summary>The prefix a damaged checkpoint folder is renamed with when a resume falls back past it: kept, never reused or removed.</summary>
    public const string DamagedPrefix = "damaged-";

    /// <summary>Everything in the run folder that the committed state does not use: older checkpoint folders, half-written ones, temporary files.</summary>
    public static void RemoveStale(string outDir, TrainingState committed)
    {
        string root = Path.Combine(outDir, "checkpoints");
        string keep = Path.GetFileName(committed.CheckpointFolder);
        string? keepToo = committed.PreviousCheckpointFolder is { } previous ? Path.GetFileName(previous) : null;
        if (Directory.Exists(root))
            foreach (var dir in Directory.GetDirectories(root))
                if (Path.GetFileName(dir) != keep && Path.GetFileName(dir) != keepToo && !Path.GetFileName(dir).StartsWith(DamagedPrefix, StringComparison.Ordinal))
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
        try { return CheckpointIntegrity.ReadState(path); }
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
        AtomicFile.WriteAllText(Path.Combine(runDir, StateFile), CheckpointIntegrity.Seal(previous.ToJson()));
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
        var state = CheckpointIntegrity.ReadState(path);
        string folder = Path.Combine(runDir, state.CheckpointFolder);
        if (!File.Exists(Path.Combine(folder, ModelFile)) || !File.Exists(Path.Combine(folder, OptimizerFile)))
            throw new DataFormatException($"'{path}' points at checkpoint '{folder}', which is missing or incomplete.");
        return state;
    }

    /// <summary>
    /// The state to resume <paramref name="runDir"/> from, every file of its checkpoint verified: the
    /// committed one when it and its checkpoint are intact; else the newest checkpoint generation that
    /// is (each checkpoint folder holds the sealed state that committed it), which then becomes the
    /// committed one — <paramref name="notice"/> says which is used and why, the damaged checkpoint
    /// folder is renamed damaged-… and a damaged state.json kept beside as state.json.damaged-…
    /// (nothing damaged is deleted). Throws <see cref="DataFormatException"/> naming the damaged file
    /// when no generation is intact. With <paramref name="repair"/> false (every rank of a job but the
    /// one that writes the folder) the same state is chosen but nothing on disk is renamed or written.
    /// </summary>
    public static TrainingState ReadIntactState(string runDir, Action<string>? notice = null, bool repair = true)
    {
        string top = Path.Combine(runDir, StateFile);
        if (!Directory.Exists(runDir)) throw new DataFormatException($"Run folder '{runDir}' does not exist.");
        if (!File.Exists(top) && !HasGenerations(runDir))
            throw new DataFormatException($"Run folder '{runDir}' has no {StateFile}: it is not a cudaswa run folder, or the run never finished an epoch.");
        TrainingState? committed = null;
        string damage;
        try
        {
            if (!File.Exists(top)) throw new DataFormatException($"'{top}' is missing");
            committed = CheckpointIntegrity.ReadState(top);
            var problems = CheckpointIntegrity.Problems(Path.Combine(runDir, committed.CheckpointFolder), committed);
            if (problems.Count == 0) return committed;
            damage = $"checkpoint {committed.CheckpointFolder} is damaged ({problems[0]})";
        }
        catch (DataFormatException e)
        {
            damage = e.Message.TrimEnd('.');
        }

        // The generations on disk, newest first, each judged by the state inside it.
        string root = Path.Combine(runDir, "checkpoints");
        var candidates = new List<TrainingState>();
        if (Directory.Exists(root))
            foreach (var dir in Directory.GetDirectories(root))
            {
                string name = Path.GetFileName(dir);
                if (name.StartsWith('.') || name.StartsWith(DamagedPrefix, StringComparison.Ordinal) || !File.Exists(Path.Combine(dir, StateFile))) continue;
                try
                {
                    var s = CheckpointIntegrity.ReadState(Path.Combine(dir, StateFile));
                    if (s.CheckpointFolder == Path.Combine("checkpoints", name) && CheckpointIntegrity.Problems(dir, s).Count == 0) candidates.Add(s);
                }
                catch (DataFormatException) { } // a damaged generation is no candidate
            }
        var chosen = candidates.OrderByDescending(s => s.GlobalStep).ThenByDescending(s => s.NextEpoch).ThenByDescending(s => s.NextBatch)
            .ThenByDescending(s => s.SavedAt, StringComparer.Ordinal).FirstOrDefault();
        if (chosen is null)
            throw new DataFormatException($"{damage}, and no intact earlier checkpoint is left in '{root}' to fall back to; the run cannot continue. " +
                                          "Nothing was changed or deleted.");

        if (!repair) return chosen;
        string stamp = DateTime.UtcNow.ToString("yyyyMMddTHHmmssZ", System.Globalization.CultureInfo.InvariantCulture);
        string kept = "";
        if (committed is not null && committed.CheckpointFolder != chosen.CheckpointFolder && Directory.Exists(Path.Combine(runDir, committed.CheckpointFolder)))
        {
            string from = Path.Combine(runDir, committed.CheckpointFolder);
            string to = Path.Combine(root, DamagedPrefix + Path.GetFileName(from));
            if (Directory.Exists(to)) to += "-" + stamp;
            Directory.Move(from, to);
            kept = $"; the damaged checkpoint is kept as {Path.GetRelativePath(runDir, to)}";
        }
        if (committed is null && File.Exists(top))
        {
            File.Copy(top, top + ".damaged-" + stamp);
            kept = $"; the damaged {StateFile} is kept as {StateFile}.damaged-{stamp}";
        }
        AtomicFile.WriteAllText(top, CheckpointIntegrity.Seal(chosen.ToJson()));
        string position = chosen.NextBatch == 0 ? $"the end of epoch {chosen.NextEpoch}" : $"epoch {chosen.NextEpoch + 1}, batch {chosen.NextBatch}";
        notice?.Invoke($"{damage}: resuming from the intact checkpoint {chosen.CheckpointFolder} ({position}){kept}.");
        return chosen;
    }

    /// <summary>Whether <paramref name="runDir"/> holds committed checkpoint folders (each with the state that committed it).</summary>
    public static bool HasGenerations(string runDir)
    {
        string root = Path.Combine(runDir, "checkpoints");
        return Directory.Exists(root) && Directory.GetDirectories(root).Any(d =>
            !Path.GetFileName(d).StartsWith('.') && !Path.GetFileName(d).StartsWith(DamagedPrefix, StringComparison.Ordinal) && File.Exists(Path.Combine(d, StateFile)));
    }

    /// <summary>Loads the weights, momentum, average and ensemble of a saved state.</summary>
    public static void Restore(string runDir, TrainingState state, Network network, Sgd sgd, WeightAverager? averager, PredictionEnsemble? ensemble)
    {
        string folder = Path.Combine(runDir, state.CheckpointFolder);
        // Never train on from unverified state: every file the checkpoint lists must be as written.
        if (CheckpointIntegrity.Problems(folder, state) is [var problem, ..])
            throw new DataFormatException($"Checkpoint '{folder}' is damaged: {problem}.");
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

/// <summary>A checkpoint (or another output) does not fit in the free disk space; refused before anything was written.</summary>
/// <param name="message">What needs how much where, and how to go on.</param>
/// <param name="needed">Bytes the write needs.</param>
/// <param name="available">Bytes free there.</param>
public sealed class InsufficientSpaceException(string message, long needed, long available) : IOException(message)
{
    /// <summary>Bytes the write needs.</summary>
    public long Needed { get; } = needed;
    /// <summary>Bytes free where it would go.</summary>
    public long Available { get; } = available;
}
