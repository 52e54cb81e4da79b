namespace CudaSwa.Data;

/// <summary>
/// One way CIFAR is distributed: the binary version (for C programs) or the python version
/// (pickles, what torchvision downloads), with the folder its archive unpacks to and its files.
/// </summary>
/// <param name="Kind">CIFAR-10 or CIFAR-100.</param>
/// <param name="Python">The python version (pickled numpy batches) rather than the binary records.</param>
/// <param name="Folder">The folder the official archive unpacks to, e.g. cifar-10-batches-bin.</param>
/// <param name="TrainFiles">The training files, in order.</param>
/// <param name="TestFile">The test file.</param>
public sealed record CifarLayout(CifarKind Kind, bool Python, string Folder, string[] TrainFiles, string TestFile)
{
    /// <summary>All files, training files first.</summary>
    public IEnumerable<string> Files => TrainFiles.Append(TestFile);

    /// <summary>"CIFAR-10 binary" or "CIFAR-100 python".</summary>
    public string Title => $"{CifarSource.Title(Kind)} {(Python ? "python" : "binary")}";

    /// <summary>The four layouts: CIFAR-10 and CIFAR-100, binary and python.</summary>
    public static readonly CifarLayout[] All =
    [
        new(CifarKind.Cifar10, false, "cifar-10-batches-bin", CifarBinary.Cifar10TrainFiles, CifarBinary.Cifar10TestFile),
        new(CifarKind.Cifar10, true, "cifar-10-batches-py", CifarPython.Cifar10TrainFiles, CifarPython.Cifar10TestFile),
        new(CifarKind.Cifar100, false, "cifar-100-binary", [CifarBinary.Cifar100TrainFile], CifarBinary.Cifar100TestFile),
        new(CifarKind.Cifar100, true, "cifar-100-python", [CifarPython.Cifar100TrainFile], CifarPython.Cifar100TestFile),
    ];

    /// <summary>Reads and checks the files' bytes as this layout's training and test sets.</summary>
    public (ImageDataset Train, ImageDataset Test) Read(Func<string, (string Name, byte[] Bytes)> file)
    {
        string tag = Kind.ToString().ToLowerInvariant();
        return (Read(TrainFiles.Select(file), $"{tag}-train"), Read([file(TestFile)], $"{tag}-test"));
    }

    private ImageDataset Read(IEnumerable<(string Name, byte[] Bytes)> files, string name) =>
        Python ? CifarPython.ReadBatches(files, Kind, name) : CifarBinary.ReadRecords(files, Kind, name);
}

/// <summary>
/// Loads CIFAR from whatever a user has: a folder of the binary version or of torchvision's python
/// version (the files themselves, or the folder the archive unpacks to inside it), or the official
/// .tar.gz of either version, read without unpacking. Errors name the path and list what was expected.
/// </summary>
public static class CifarSource
{
    /// <summary>"CIFAR-10" or "CIFAR-100".</summary>
    public static string Title(CifarKind kind) => kind == CifarKind.Cifar10 ? "CIFAR-10" : "CIFAR-100";

    /// <summary>Reads the training and test sets of <paramref name="kind"/> from the folder or archive <paramref name="path"/>.</summary>
    public static (ImageDataset Train, ImageDataset Test) Load(string path, CifarKind kind)
    {
        if (File.Exists(path))
        {
            if (!CifarArchive.IsArchivePath(path))
                throw new DataFormatException($"Data path '{path}' is a file, not a folder or a .tar.gz archive of {Title(kind)}.");
            var (layout, members) = ReadArchive(path, kind);
            return layout.Read(f => ($"{path}:{layout.Folder}/{f}", members[$"{layout.Folder}/{f}"]));
        }
        if (!Directory.Exists(path))
            throw new DataFormatException($"Data folder '{path}' does not exist.");
        foreach (var layout in CifarLayout.All.Where(l => l.Kind == kind))
        {
            foreach (var folder in new[] { path, Path.Combine(path, layout.Folder) })
            {
                if (!File.Exists(Path.Combine(folder, layout.TestFile))) continue;
                foreach (var f in layout.Files)
                    if (!File.Exists(Path.Combine(folder, f)))
                        throw new DataFormatException($"'{Path.Combine(folder, f)}' is missing: a {layout.Title} folder needs {string.Join(", ", layout.Files)}.");
                return layout.Read(f => (Path.Combine(folder, f), File.ReadAllBytes(Path.Combine(folder, f))));
            }
        }
        var other = CifarLayout.All.FirstOrDefault(l => l.Kind != kind &&
            (File.Exists(Path.Combine(path, l.TestFile)) || File.Exists(Path.Combine(path, l.Folder, l.TestFile))));
        string holds = other is null ? "" : $" It holds {other.Title}, not {Title(kind)}.";
        throw new DataFormatException($"Data folder '{path}' has no {Title(kind)} files.{holds} Expected {Expected(kind)}.");
    }

    /// <summary>
    /// Unpacks the CIFAR files of the archive <paramref name="archive"/> into <paramref name="dir"/>/&lt;its folder&gt;
    /// and returns that folder. Only the expected files are written, under their known names, after
    /// every one has been read and checked; the folder appears whole or not at all (it is written
    /// under a temporary name and renamed).
    /// </summary>
    public static string Extract(string archive, CifarKind kind, string dir)
    {
        var (layout, members) = ReadArchive(archive, kind);
        layout.Read(f => ($"{archive}:{layout.Folder}/{f}", members[$"{layout.Folder}/{f}"])); // checked before anything is written
        string target = Path.Combine(dir, layout.Folder);
        string temp = Path.Combine(dir, $".{layout.Folder}.partial-{Environment.ProcessId}");
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        try
        {
            foreach (var f in layout.Files)
                File.WriteAllBytes(Path.Combine(temp, f), members[$"{layout.Folder}/{f}"]);
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.Move(temp, target);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
        return target;
    }

    private static (CifarLayout Layout, Dictionary<string, byte[]> Members) ReadArchive(string path, CifarKind kind)
    {
        var wanted = CifarLayout.All.SelectMany(l => l.Files.Select(f => $"{l.Folder}/{f}")).ToHashSet(StringComparer.Ordinal);
        var members = CifarArchive.ReadMembers(path, wanted);
        var layout = CifarLayout.All.FirstOrDefault(l => l.Kind == kind && l.Files.All(f => members.ContainsKey($"{l.Folder}/{f}")));
        if (layout is not null) return (layout, members);
        var other = CifarLayout.All.FirstOrDefault(l => l.Kind != kind && l.Files.All(f => members.ContainsKey($"{l.Folder}/{f}")));
        string holds = other is null ? "" : $" It holds {other.Title}, not {Title(kind)}.";
        throw new DataFormatException($"Archive '{path}' has no complete {Title(kind)} set.{holds} Expected {Expected(kind)}.");
    }

    private static string Expected(CifarKind kind) => string.Join(", or ", CifarLayout.All.Where(l => l.Kind == kind)
        .Select(l => $"the {(l.Python ? "python" : "binary")} version's {string.Join(", ", l.Files)} (there or in '{l.Folder}/')"));
}
