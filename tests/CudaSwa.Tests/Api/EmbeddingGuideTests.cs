using System.Text.RegularExpressions;
using NUnit.Framework;

namespace CudaSwa.Tests.Api;

/// <summary>
/// docs/embedding.md shows code cut from the samples, which CI builds against the package and
/// runs (samples/run.sh). Each block follows a marker <c>&lt;!-- snippet: Sample#name --&gt;</c> and must
/// equal the region between <c>// &lt;snippet:name&gt;</c> and <c>// &lt;/snippet:name&gt;</c> in
/// samples/Sample/Program.cs (indentation removed), so the guide shows only code that compiles
/// and runs.
/// </summary>
[Category("Cpu")]
public class EmbeddingGuideTests
{
    [Test]
    public void EveryCodeBlockOfTheGuideIsARegionOfASampleVerbatim()
    {
        string guide = Support.Toolchain.RepoPath("docs", "embedding.md");
        string[] lines = File.ReadAllLines(guide);
        var marker = new Regex(@"^<!-- snippet: (\w+)#([\w-]+) -->$");
        var used = new HashSet<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            var m = marker.Match(lines[i]);
            if (!m.Success) continue;
            string sample = m.Groups[1].Value, name = m.Groups[2].Value;
            Assert.That(lines[i + 1], Is.EqualTo("```csharp"), $"{guide}:{i + 2}: a ```csharp block must follow the marker");
            int end = Array.IndexOf(lines, "```", i + 2);
            Assert.That(end, Is.GreaterThan(i + 1), $"{guide}:{i + 1}: the block is not closed");
            string shown = string.Join("\n", lines[(i + 2)..end]);
            string expected = Region(sample, name);
            Assert.That(shown, Is.EqualTo(expected), $"{guide}:{i + 1}: the block differs from samples/{sample}/Program.cs region '{name}'; copy the region:\n{expected}");
            used.Add($"{sample}#{name}");
        }
        Assert.That(used, Has.Count.GreaterThanOrEqualTo(8), "the guide shows the samples' code");
        var regions = Directory.GetFiles(Support.Toolchain.RepoPath("samples"), "Program.cs", SearchOption.AllDirectories)
            .SelectMany(f => Regex.Matches(File.ReadAllText(f), @"// <snippet:([\w-]+)>").Select(r => $"{Path.GetFileName(Path.GetDirectoryName(f))}#{r.Groups[1].Value}"));
        Assert.That(regions, Is.SubsetOf(used), "every snippet region of the samples appears in the guide");
    }

    /// <summary>The lines between the region's markers, with their common indentation removed.</summary>
    private static string Region(string sample, string name)
    {
        string file = Support.Toolchain.RepoPath("samples", sample, "Program.cs");
        Assert.That(File.Exists(file), Is.True, file);
        string[] lines = File.ReadAllLines(file);
        int begin = Array.FindIndex(lines, l => l.Trim() == $"// <snippet:{name}>");
        int end = Array.FindIndex(lines, l => l.Trim() == $"// </snippet:{name}>");
        Assert.That(begin >= 0 && end > begin, Is.True, $"{file}: region '{name}' is not marked");
        var body = lines[(begin + 1)..end];
        int indent = body.Where(l => l.Trim().Length > 0).Min(l => l.Length - l.TrimStart().Length);
        return string.Join("\n", body.Select(l => l.Trim().Length == 0 ? "" : l[indent..].TrimEnd()));
    }
}
