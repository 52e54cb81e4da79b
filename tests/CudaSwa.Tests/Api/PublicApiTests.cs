using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;
using NUnit.Framework;

namespace CudaSwa.Tests.Api;

/// <summary>
/// The engine's public surface is deliberate: native bindings and process-wide switches stay
/// internal, every public type and member carries XML documentation (the shipped
/// CudaSwa.Engine.xml is read here, next to the assembly), the kernels travel inside the assembly,
/// and engine messages never speak in CLI flags. The exact list of public members lives in
/// src/CudaSwa/PublicAPI.*.txt, which the build checks (PublicApiAnalyzers).
/// </summary>
[Category("Cpu")]
public class PublicApiTests
{
    private static readonly Assembly Engine = typeof(Backend).Assembly;
    private static Type[] PublicTypes => [.. Engine.GetTypes().Where(t => t.IsVisible)];

    [Test]
    public void NativeBindingsGemmAndTheWorkerPoolAreNotPublic()
    {
        var all = Engine.GetTypes();
        Assert.That(all.Where(t => t.Namespace == "CudaSwa.Native"), Is.Not.Empty, "the bindings exist (else this test checks nothing)");
        // Native holds the loader, so it also holds what the loader reports to users: the exception
        // a failed call throws and the summary of the libraries it selected. Nothing else is public.
        Assert.That(PublicTypes.Where(t => t.Namespace?.StartsWith("CudaSwa.Native", StringComparison.Ordinal) == true).Select(t => t.FullName),
            Is.EquivalentTo(new[] { "CudaSwa.Native.CudaException", "CudaSwa.Native.CudaLibrary", "CudaSwa.Native.CudaLibraries" }));
        foreach (string name in new[] { "CudaSwa.Cpu.Gemm", "CudaSwa.Cpu.Workers.CpuParallel" })
        {
            var type = Engine.GetType(name);
            Assert.That(type, Is.Not.Null, $"{name} exists");
            Assert.That(type!.IsVisible, Is.False, $"{name} must not be public");
        }
        Assert.That(PublicTypes.Length, Is.InRange(40, 200), "sanity: the public surface was found");
    }

    [Test]
    public void EveryPublicTypeAndMemberHasDocumentation()
    {
        string xml = Path.ChangeExtension(Engine.Location, ".xml");
        Assert.That(File.Exists(xml), Is.True, $"{xml}: the engine builds its documentation file (GenerateDocumentationFile)");
        var documented = XDocument.Load(xml).Descendants("member")
            .Where(m => m.Value.Trim().Length > 0 || m.Element("inheritdoc") is not null)
            .Select(m => (string)m.Attribute("name")!).ToHashSet();
        var missing = new List<string>();
        foreach (var type in PublicTypes)
        {
            string id = type.FullName!.Replace('+', '.');
            if (!documented.Contains("T:" + id)) missing.Add("T:" + id);
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            // Properties, fields and events have parameter-free documentation ids; methods are
            // covered by the build itself (CS1591 is an error there).
            foreach (var p in type.GetProperties(flags).Where(p => p.GetIndexParameters().Length == 0 && !IsOverride(p.GetMethod ?? p.SetMethod!)))
                if (!documented.Contains($"P:{id}.{p.Name}")) missing.Add($"P:{id}.{p.Name}");
            foreach (var f in type.GetFields(flags).Where(f => !f.IsSpecialName))
                if (!documented.Contains($"F:{id}.{f.Name}")) missing.Add($"F:{id}.{f.Name}");
            foreach (var e in type.GetEvents(flags))
                if (!documented.Contains($"E:{id}.{e.Name}")) missing.Add($"E:{id}.{e.Name}");
        }
        Assert.That(missing, Is.Empty, "public API without XML documentation:\n" + string.Join("\n", missing));
    }

    private static bool IsOverride(MethodInfo m) => m.GetBaseDefinition().DeclaringType != m.DeclaringType;

    [Test]
    public void TheKernelSourcesTravelInsideTheAssembly()
    {
        string kernels = Support.Toolchain.RepoPath("kernels");
        var expected = Directory.GetFiles(kernels, "*.cu").Select(f => "kernels/" + Path.GetFileName(f)).ToArray();
        Assert.That(expected, Is.Not.Empty, kernels);
        Assert.That(Engine.GetManifestResourceNames(), Is.SupersetOf(expected));
    }

    [Test]
    public void EngineMessagesNameNoCliFlags()
    {
        string source = Support.Toolchain.RepoPath("src", "CudaSwa");
        // A string literal (plain or interpolated) holding "--word": a command-line flag. The only
        // legitimate ones are NVRTC's compiler options.
        var flag = new Regex("\\$?\"(?:[^\"\\\\]|\\\\.)*?--[a-z][a-z0-9-]*(?:[^\"\\\\]|\\\\.)*\"");
        var nvrtcOption = new Regex("--(gpu-architecture|std)=");
        var found = new List<string>();
        int files = 0;
        foreach (string file in Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")) continue;
            files++;
            string[] lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                string code = lines[i].TrimStart();
                if (code.StartsWith("//", StringComparison.Ordinal)) continue;
                foreach (Match m in flag.Matches(lines[i]))
                    if (!nvrtcOption.IsMatch(m.Value))
                        found.Add($"{Path.GetRelativePath(source, file)}:{i + 1}: {m.Value}");
            }
        }
        Assert.That(files, Is.GreaterThan(50), $"engine sources found under {source}");
        Assert.That(found, Is.Empty, "engine code speaks of TrainingOptions properties, not of the CLI's flags");
    }
}
