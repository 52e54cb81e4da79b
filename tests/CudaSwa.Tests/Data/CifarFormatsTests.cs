using System.Formats.Tar;
using CudaSwa.Data;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Data;

/// <summary>
/// Every form of CIFAR a user may have — binary folder, torchvision's python folder, the .tar.gz
/// of either, the archive's folder nested inside the given one — gives the same images and labels;
/// hostile or damaged archives and python files are refused naming the file.
/// </summary>
public class CifarFormatsTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = Cli.CliRunner.TempDir("formats");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private static (ImageDataset Train, ImageDataset Test) Sets(CifarKind kind, Random rng) =>
        (CifarFixtures.RandomSet(kind == CifarKind.Cifar10 ? 37 : 130, CifarBinary.Classes(kind), rng, "train"),
         CifarFixtures.RandomSet(kind == CifarKind.Cifar10 ? 11 : 104, CifarBinary.Classes(kind), rng, "test"));

    private static void AssertSame((ImageDataset Train, ImageDataset Test) expected, (ImageDataset Train, ImageDataset Test) actual, string what)
    {
        Assert.That(actual.Train.Labels, Is.EqualTo(expected.Train.Labels), $"{what}: training labels");
        Assert.That(actual.Train.Images, Is.EqualTo(expected.Train.Images), $"{what}: training images");
        Assert.That(actual.Test.Labels, Is.EqualTo(expected.Test.Labels), $"{what}: test labels");
        Assert.That(actual.Test.Images, Is.EqualTo(expected.Test.Images), $"{what}: test images");
        Assert.That(actual.Train.NumClasses, Is.EqualTo(expected.Train.NumClasses), $"{what}: classes");
    }

    [TestCase(CifarKind.Cifar10)]
    [TestCase(CifarKind.Cifar100)]
    public void BinaryPythonAndArchivesGiveTheSameImagesAndLabels(CifarKind kind)
    {
        var rng = new Fresh();
        var sets = Sets(kind, rng.Random);
        foreach (var layout in CifarLayout.All.Where(l => l.Kind == kind))
        {
            string dir = Path.Combine(_root, layout.Folder);
            if (layout.Python) CifarFixtures.WritePython(dir, kind, sets.Train, sets.Test);
            else CifarFixtures.WriteBinary(dir, kind, sets.Train, sets.Test);
            AssertSame(sets, CifarSource.Load(dir, kind), $"{layout.Title} folder");
            AssertSame(sets, CifarSource.Load(_root, kind), $"{layout.Title} folder nested in the given one");
            string archive = Path.Combine(_root, $"{layout.Folder}.tar.gz");
            CifarFixtures.TarGz(archive, dir, layout.Folder);
            Directory.Delete(dir, true);
            AssertSame(sets, CifarSource.Load(archive, kind), $"{layout.Title} .tar.gz");
            string extracted = CifarSource.Extract(archive, kind, Path.Combine(_root, "unpacked"));
            Assert.That(extracted, Is.EqualTo(Path.Combine(_root, "unpacked", layout.Folder)));
            AssertSame(sets, CifarSource.Load(extracted, kind), $"{layout.Title} unpacked");
            Assert.That(Directory.GetDirectories(Path.Combine(_root, "unpacked")), Has.Length.EqualTo(1), "no temporary folder left");
            Directory.Delete(Path.Combine(_root, "unpacked"), true);
            File.Delete(archive);
        }
    }

    [Test]
    public void PythonBatchesWrittenByPython3ReadTheSame()
    {
        var rng = new Fresh();
        var sets = Sets(CifarKind.Cifar10, rng.Random);
        CifarFixtures.WritePython(_root, CifarKind.Cifar10, sets.Train, sets.Test, python3: true);
        AssertSame(sets, CifarSource.Load(_root, CifarKind.Cifar10), "protocol 3, bytes data");
    }

    [Test]
    public void PythonBatchWithAnotherDtypeOrShapeIsRefusedNamingTheFile()
    {
        var rng = new Fresh();
        var (train, test) = Sets(CifarKind.Cifar10, rng.Random);
        CifarFixtures.WritePython(_root, CifarKind.Cifar10, train, test);
        string file = Path.Combine(_root, "data_batch_2");
        File.WriteAllBytes(file, CifarFixtures.Batch(CifarKind.Cifar10, train, 0, 5, dtype: "f4"));
        var e = Assert.Throws<DataFormatException>(() => CifarSource.Load(_root, CifarKind.Cifar10))!;
        Assert.That(e.Message, Does.Contain("data_batch_2").And.Contain("f4").And.Contain("uint8"));
        File.WriteAllBytes(file, CifarFixtures.Batch(CifarKind.Cifar10, train, 0, 5, rowsInShape: 6));
        e = Assert.Throws<DataFormatException>(() => CifarSource.Load(_root, CifarKind.Cifar10))!;
        Assert.That(e.Message, Does.Contain("data_batch_2").And.Contain("truncated"));
        File.WriteAllBytes(file, [0x80, 0x02, (byte)'}', (byte)'(']);
        e = Assert.Throws<DataFormatException>(() => CifarSource.Load(_root, CifarKind.Cifar10))!;
        Assert.That(e.Message, Does.Contain("data_batch_2").And.Contain("not a readable pickle"));
    }

    [Test]
    public void ArchivesWithEntriesOutsideTheFolderOrLinksAreRefused()
    {
        var rng = new Fresh();
        var (train, test) = Sets(CifarKind.Cifar10, rng.Random);
        string dir = Path.Combine(_root, "src");
        CifarFixtures.WriteBinary(dir, CifarKind.Cifar10, train, test);
        var hostile = new (string Name, TarEntry Entry)[]
        {
            ("dot-dot", new PaxTarEntry(TarEntryType.RegularFile, "cifar-10-batches-bin/../../escaped.bin") { DataStream = new MemoryStream([1, 2, 3]) }),
            ("absolute", new PaxTarEntry(TarEntryType.RegularFile, "/tmp/escaped.bin") { DataStream = new MemoryStream([1, 2, 3]) }),
            ("symlink", new PaxTarEntry(TarEntryType.SymbolicLink, "cifar-10-batches-bin/link") { LinkName = "/etc/passwd" }),
            ("hard link", new PaxTarEntry(TarEntryType.HardLink, "cifar-10-batches-bin/hard") { LinkName = "cifar-10-batches-bin/test_batch.bin" }),
        };
        foreach (var (name, entry) in hostile)
        {
            string archive = Path.Combine(_root, "hostile.tar.gz");
            CifarFixtures.TarGz(archive, dir, "cifar-10-batches-bin", entry);
            var e = Assert.Throws<DataFormatException>(() => CifarSource.Load(archive, CifarKind.Cifar10), name)!;
            Assert.That(e.Message, Does.Contain("hostile.tar.gz").And.Contain("refused"), name);
            string target = Path.Combine(_root, "unpacked");
            Assert.Throws<DataFormatException>(() => CifarSource.Extract(archive, CifarKind.Cifar10, target), name);
            Assert.That(Directory.Exists(Path.Combine(target, "cifar-10-batches-bin")), Is.False, $"{name}: nothing unpacked");
            Assert.That(File.Exists(Path.Combine(_root, "escaped.bin")) || File.Exists("/tmp/escaped.bin"), Is.False, $"{name}: nothing written outside");
        }
    }

    [Test]
    public void DamagedArchiveOrTheOtherDatasetIsNamed()
    {
        var rng = new Fresh();
        var (train, test) = Sets(CifarKind.Cifar10, rng.Random);
        string dir = Path.Combine(_root, "src");
        CifarFixtures.WriteBinary(dir, CifarKind.Cifar10, train, test);
        string archive = Path.Combine(_root, "cifar-10-binary.tar.gz");
        CifarFixtures.TarGz(archive, dir, "cifar-10-batches-bin");
        var e = Assert.Throws<DataFormatException>(() => CifarSource.Load(archive, CifarKind.Cifar100))!;
        Assert.That(e.Message, Does.Contain("holds CIFAR-10 binary, not CIFAR-100"));
        e = Assert.Throws<DataFormatException>(() => CifarSource.Load(dir, CifarKind.Cifar100))!;
        Assert.That(e.Message, Does.Contain("holds CIFAR-10 binary, not CIFAR-100"));

        var bytes = File.ReadAllBytes(archive);
        File.WriteAllBytes(archive, bytes[..(bytes.Length / 2)]);
        e = Assert.Throws<DataFormatException>(() => CifarSource.Load(archive, CifarKind.Cifar10))!;
        Assert.That(e.Message, Does.Contain("cifar-10-binary.tar.gz"));
        File.WriteAllBytes(archive, [.. bytes[..100], .. new byte[5000]]);
        e = Assert.Throws<DataFormatException>(() => CifarSource.Load(archive, CifarKind.Cifar10))!;
        Assert.That(e.Message, Does.Contain("cifar-10-binary.tar.gz"));
    }
}
