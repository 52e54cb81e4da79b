namespace CudaSwa.Data;

/// <summary>Which CIFAR dataset a folder holds.</summary>
public enum CifarKind
{
    /// <summary>CIFAR-10: 10 classes; five training files and one test file.</summary>
    Cifar10,
    /// <summary>CIFAR-100: 100 fine classes (20 coarse); one training file and one test file.</summary>
    Cifar100,
}

/// <summary>
/// Reads and writes the CIFAR binary formats (https://www.cs.toronto.edu/~kriz/cifar.html).
/// CIFAR-10: data_batch_1..5.bin and test_batch.bin, records of 1 label byte + 3072 pixel bytes
/// (1024 red, then green, then blue, each 32x32 row-major). CIFAR-100: train.bin and test.bin,
/// records of a coarse label byte, a fine label byte, then the 3072 pixel bytes; the fine label
/// (100 classes) is used. Every file is validated on load: present, non-empty, a whole number of
/// records, labels in range; errors name the file and the problem.
/// </summary>
public static class CifarBinary
{
    /// <summary>Pixel bytes per image: 3 planes of 32x32.</summary>
    public const int PixelBytes = 3 * 32 * 32;

    /// <summary>The CIFAR-10 training files, data_batch_1.bin to data_batch_5.bin.</summary>
    public static readonly string[] Cifar10TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    /// <summary>The CIFAR-10 test file.</summary>
    public const string Cifar10TestFile = "test_batch.bin";
    /// <summary>The CIFAR-100 training file.</summary>
    public const string Cifar100TrainFile = "train.bin";
    /// <summary>The CIFAR-100 test file.</summary>
    public const string Cifar100TestFile = "test.bin";

    /// <summary>Bytes per record: the label byte (CIFAR-10) or the coarse and fine label bytes (CIFAR-100), then the pixels.</summary>
    public static int RecordBytes(CifarKind kind) => kind == CifarKind.Cifar10 ? 1 + PixelBytes : 2 + PixelBytes;
    /// <summary>Number of classes: 10 or 100.</summary>
    public static int Classes(CifarKind kind) => kind == CifarKind.Cifar10 ? 10 : 100;

    /// <summary>
    /// The folder that holds the files: <paramref name="dir"/> itself, or the folder the official
    /// archives unpack to (cifar-10-batches-bin, cifar-100-binary) inside it.
    /// </summary>
    public static string ResolveFolder(string dir, CifarKind kind)
    {
        if (!Directory.Exists(dir))
            throw new DataFormatException($"Data folder '{dir}' does not exist.");
        string marker = kind == CifarKind.Cifar10 ? Cifar10TestFile : Cifar100TestFile;
        if (File.Exists(Path.Combine(dir, marker))) return dir;
        string nested = Path.Combine(dir, kind == CifarKind.Cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary");
        if (File.Exists(Path.Combine(nested, marker))) return nested;
        string expected = kind == CifarKind.Cifar10
            ? string.Join(", ", Cifar10TrainFiles.Append(Cifar10TestFile))
            : $"{Cifar100TrainFile}, {Cifar100TestFile}";
        throw new DataFormatException($"Data folder '{dir}' has no {(kind == CifarKind.Cifar10 ? "CIFAR-10" : "CIFAR-100")} binaries: expected {expected} (there or in '{Path.GetFileName(nested)}/').");
    }

    /// <summary>
    /// Reads the training and test splits from <paramref name="dir"/> (or the archive's folder inside it);
    /// throws <see cref="DataFormatException"/> naming the file when one is missing or malformed.
    /// </summary>
    public static (ImageDataset Train, ImageDataset Test) Load(string dir, CifarKind kind)
    {
        string folder = ResolveFolder(dir, kind);
        string[] trainFiles = kind == CifarKind.Cifar10 ? Cifar10TrainFiles : [Cifar100TrainFile];
        string testFile = kind == CifarKind.Cifar10 ? Cifar10TestFile : Cifar100TestFile;
        foreach (var f in trainFiles.Append(testFile))
            if (!File.Exists(Path.Combine(folder, f)))
                throw new DataFormatException($"'{Path.Combine(folder, f)}' is missing: a {(kind == CifarKind.Cifar10 ? "CIFAR-10" : "CIFAR-100")} folder needs {string.Join(", ", trainFiles.Append(testFile))}.");
        var train = ReadFiles(trainFiles.Select(f => Path.Combine(folder, f)).ToArray(), kind, $"{kind.ToString().ToLowerInvariant()}-train");
        var test = ReadFiles([Path.Combine(folder, testFile)], kind, $"{kind.ToString().ToLowerInvariant()}-test");
        return (train, test);
    }

    /// <summary>
    /// Reads and validates record files into one dataset called <paramref name="name"/>, in file order;
    /// throws <see cref="DataFormatException"/> for an empty or truncated file or a label out of range.
    /// </summary>
    public static ImageDataset ReadFiles(string[] paths, CifarKind kind, string name) =>
        ReadRecords(paths.Select(p => (p, File.ReadAllBytes(p))), kind, name);

    /// <summary>
    /// Validates record files already in memory (<c>Name</c> is what errors call each one, e.g. its path
    /// or its place in an archive) and joins them into one dataset called <paramref name="name"/>, in order.
    /// </summary>
    public static ImageDataset ReadRecords(IEnumerable<(string Name, byte[] Bytes)> files, CifarKind kind, string name)
    {
        int record = RecordBytes(kind), classes = Classes(kind);
        var images = new List<byte[]>();
        var labels = new List<int>();
        foreach (var (path, bytes) in files)
        {
            if (bytes.Length == 0)
                throw new DataFormatException($"'{path}' is empty.");
            if (bytes.Length % record != 0)
                throw new DataFormatException($"'{path}' has {bytes.Length} bytes, not a whole number of {record}-byte {(kind == CifarKind.Cifar10 ? "CIFAR-10" : "CIFAR-100")} records (truncated or not a {kind} file?).");
            int n = bytes.Length / record;
            var pixels = new byte[n * PixelBytes];
            for (int i = 0; i < n; i++)
            {
                int at = i * record;
                int label = kind == CifarKind.Cifar10 ? bytes[at] : bytes[at + 1];
                if (kind == CifarKind.Cifar100 && bytes[at] >= 20)
                    throw new DataFormatException($"'{path}': record {i} has coarse label {bytes[at]}, outside 0..19.");
                if (label >= classes)
                    throw new DataFormatException($"'{path}': record {i} has label {label}, outside 0..{classes - 1}.");
                labels.Add(label);
                Buffer.BlockCopy(bytes, at + record - PixelBytes, pixels, i * PixelBytes, PixelBytes);
            }
            images.Add(pixels);
        }
        return Join(images, labels, classes, name);
    }

    /// <summary>One dataset from the images of several files (each a block of 3072-byte images) and all their labels.</summary>
    internal static ImageDataset Join(List<byte[]> images, List<int> labels, int classes, string name)
    {
        var all = new byte[images.Sum(a => (long)a.Length)];
        int offset = 0;
        foreach (var a in images) { Buffer.BlockCopy(a, 0, all, offset, a.Length); offset += a.Length; }
        return new ImageDataset(name, all, labels.ToArray(), classes);
    }

    /// <summary>Writes a dataset as CIFAR-10 binaries: train split evenly over data_batch_1..5.bin, test as test_batch.bin (atomically).</summary>
    public static void WriteCifar10(string dir, ImageDataset train, ImageDataset test, IReadOnlyList<string>? classNames = null)
    {
        if (train.NumClasses > 10 || test.NumClasses > 10)
            throw new ArgumentException("CIFAR-10 files hold at most 10 classes.");
        Directory.CreateDirectory(dir);
        for (int f = 0; f < 5; f++)
        {
            int start = (int)((long)train.Count * f / 5), end = (int)((long)train.Count * (f + 1) / 5);
            WriteRecords(Path.Combine(dir, Cifar10TrainFiles[f]), train, start, end);
        }
        WriteRecords(Path.Combine(dir, Cifar10TestFile), test, 0, test.Count);
        if (classNames is not null)
            Util.AtomicFile.WriteAllText(Path.Combine(dir, "batches.meta.txt"), string.Join("\n", classNames) + "\n");
    }

    private static void WriteRecords(string path, ImageDataset data, int start, int end)
    {
        var bytes = new byte[(end - start) * (1 + PixelBytes)];
        for (int i = start; i < end; i++)
        {
            int at = (i - start) * (1 + PixelBytes);
            bytes[at] = (byte)data.Labels[i];
            data.Image(i).CopyTo(bytes.AsSpan(at + 1, PixelBytes));
        }
        Util.AtomicFile.WriteAllBytes(path, bytes);
    }
}

/// <summary>Bad input data (a missing, truncated or corrupt file); the message names the file and the problem.</summary>
public sealed class DataFormatException(string message) : Exception(message);
