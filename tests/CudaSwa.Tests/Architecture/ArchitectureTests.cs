using ArchUnitNET.Domain;
using ArchUnitNET.Fluent;
using ArchUnitNET.Loader;
using ArchUnitNET.NUnit;
using CudaSwa.Cpu;
using NUnit.Framework;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace CudaSwa.Tests.Architecture;

/// <summary>
/// The engine's allowed dependencies, checked on the compiled assemblies (docs/architecture.md,
/// "Dependencies", draws the same picture). A namespace is a concept; the foundation (Util, Native,
/// Tensors, Cpu, Cuda, Layers) knows nothing of what is built on it, and no two concepts need each other.
/// </summary>
[TestFixture]
[Category("Architecture")]
public class ArchitectureTests
{
    /// <summary>The engine and the CLI (which must stay outside it).</summary>
    private static readonly Lazy<ArchUnitNET.Domain.Architecture> EngineAndCli = new(() =>
        new ArchLoader().LoadAssemblies(typeof(Tensors.Backend).Assembly, typeof(global::CudaSwa.Cli.CliApp).Assembly).Build());

    private static readonly Lazy<ArchUnitNET.Domain.Architecture> Engine = new(() =>
        new ArchLoader().LoadAssemblies(typeof(Tensors.Backend).Assembly).Build());

    /// <summary>Each foundation namespace and the engine namespaces it may use (besides its own sub-namespaces).</summary>
    private static readonly (string Namespace, string[] MayUse)[] Foundation =
    [
        ("Util", []),
        ("Native", ["Util"]),
        ("Tensors", ["Util"]),
        ("Cpu", ["Tensors", "Util"]),
        ("Cuda", ["Native", "Tensors", "Util"]),
        ("Layers", ["Tensors", "Util"]),
    ];

    private static string Below(string ns) => $@"^CudaSwa\.{ns}(\..+)?$";

    [Test]
    public void ArchitectureEngineNamespacesFormNoCycles()
    {
        IArchRule rule = ArchUnitNET.Fluent.Slices.SliceRuleDefinition.Slices()
            .Matching("CudaSwa.(*)")
            .Should().BeFreeOfCycles();
        rule.Check(Engine.Value);
    }

    [TestCaseSource(nameof(FoundationCases))]
    public void ArchitectureFoundationDependsOnNothingAboveIt(string ns, string[] mayUse)
    {
        string allowed = string.Join("|", mayUse.Append(ns));
        IArchRule rule = Types().That().ResideInNamespaceMatching(Below(ns))
            .Should().NotDependOnAny(Types().That().ResideInNamespaceMatching(@"^CudaSwa(\..+)?$")
                .And().DoNotResideInNamespaceMatching($@"^CudaSwa\.({allowed})(\..+)?$"))
            .Because($"CudaSwa.{ns} may use only {(mayUse.Length == 0 ? "nothing else of the engine" : string.Join(", ", mayUse))}");
        rule.Check(Engine.Value);
    }

    private static IEnumerable<TestCaseData> FoundationCases() =>
        Foundation.Select(f => new TestCaseData(f.Namespace, f.MayUse).SetName($"ArchitectureFoundationDependsOnNothingAboveIt({f.Namespace})"));

    [Test]
    public void ArchitectureNoEngineTypeDependsOnTheCli()
    {
        IArchRule rule = Types().That().ResideInAssembly(typeof(Tensors.Backend).Assembly)
            .Should().NotDependOnAny(Types().That().ResideInAssembly(typeof(global::CudaSwa.Cli.CliApp).Assembly));
        rule.Check(EngineAndCli.Value);
    }

    [Test]
    public void ArchitectureOnlyDevicesAndCpuNameTheCpuBackend()
    {
        IArchRule rule = Types().That().ResideInAssembly(typeof(Tensors.Backend).Assembly)
            .And().DoNotResideInNamespaceMatching(@"^CudaSwa\.(Cpu|Devices)(\..+)?$")
            .Should().NotDependOnAny(typeof(CpuBackend))
            .Because("everything else asks the Backend for what it needs (Devices.BackendFactory makes backends)");
        rule.Check(Engine.Value);
    }

    /// <summary>
    /// The CLI is a user of the engine like any embedding app: it sees the public API only, so
    /// everything it needs is public and documented (the test project alone may see internals).
    /// </summary>
    [Test]
    public void ArchitectureCliSeesOnlyThePublicApi()
    {
        string cli = typeof(global::CudaSwa.Cli.CliApp).Assembly.GetName().Name!;
        var friends = typeof(Tensors.Backend).Assembly.GetCustomAttributes(typeof(System.Runtime.CompilerServices.InternalsVisibleToAttribute), false)
            .Cast<System.Runtime.CompilerServices.InternalsVisibleToAttribute>().Select(a => a.AssemblyName.Split(',')[0].Trim()).ToList();
        Assert.That(friends, Is.Not.Empty, "the engine grants its tests access to internals; none found means this check reads the wrong assembly");
        Assert.That(friends, Has.None.EqualTo(cli).IgnoreCase, $"the engine lets the CLI ({cli}) see its internals");
    }
}
