using CudaSwa.Data;

namespace CudaSwa.Cli.Download;

/// <summary>
/// A dataset archive as its authors publish it: where it is, its size and the MD5 printed on the
/// dataset's page (https://www.cs.toronto.edu/~kriz/cifar.html), which a download must match.
/// </summary>
/// <param name="Name">What the user types: cifar10 or cifar100.</param>
/// <param name="Kind">The dataset.</param>
/// <param name="Url">The official download address.</param>
/// <param name="Size">The archive's size in bytes.</param>
/// <param name="Md5">The MD5 the dataset's page publishes, lowercase hex.</param>
internal sealed record DatasetArchive(string Name, CifarKind Kind, Uri Url, long Size, string Md5)
{
    /// <summary>The archive's file name, as in its address.</summary>
    public string FileName => Path.GetFileName(Url.AbsolutePath);

    /// <summary>The folder the archive unpacks to (the binary version of the dataset).</summary>
    public string Folder => CifarLayout.All.First(l => l.Kind == Kind && !l.Python).Folder;

    /// <summary>The binary versions of CIFAR-10 and CIFAR-100, the format cudaswa reads fastest.</summary>
    public static readonly DatasetArchive[] Official =
    [
        new("cifar10", CifarKind.Cifar10, new Uri("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"), 170_052_171, "c32a1d4ab5d03f1284b67883e8d87530"),
        new("cifar100", CifarKind.Cifar100, new Uri("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"), 168_513_733, "03b5dce01913d631647c71ecec9e9cb8"),
    ];

    private static readonly AsyncLocal<IReadOnlyList<DatasetArchive>?> s_forTests = new();

    /// <summary>
    /// Tests only: the archives to use instead of the official ones (a loopback server's, with their
    /// own checksums), for the calling flow. Nothing outside the tests sets it.
    /// </summary>
    internal static IReadOnlyList<DatasetArchive>? ForTests { get => s_forTests.Value; set => s_forTests.Value = value; }

    /// <summary>The archive of <paramref name="name"/> (cifar10, cifar100), or null.</summary>
    public static DatasetArchive? Find(string name) =>
        Official.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase)) is { } known ? Of(known.Kind) : null;

    /// <summary>The archive of the dataset <paramref name="kind"/>.</summary>
    public static DatasetArchive Of(CifarKind kind) => ForTests?.FirstOrDefault(a => a.Kind == kind) ?? Official.First(a => a.Kind == kind);
}
