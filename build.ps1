#!/usr/bin/env pwsh
<#
.SYNOPSIS
  CudaSwa build tasks. Run as: dotnet tool restore; dotnet pwsh build.ps1 <task>

.DESCRIPTION
  build    build the solution (Release)
  test     run the test suite (the same command README and .ci/run use)
  bench    run the BenchmarkDotNet suite; pass BenchmarkDotNet arguments after --, e.g.
           dotnet pwsh build.ps1 bench --filter '*SwaUpdate*'
  compare  one-command ratio table, ours vs PyTorch on this machine (bench/compare.sh)
  kernels  compile every kernels/*.cu to PTX with clang-14 (no CUDA SDK needed), to catch
           kernel compile errors without a GPU; skipped with a note when clang-14 is absent
  pack     write the engine's NuGet package (CudaSwa.<version>.nupkg, XML docs, README, symbols) and
           the CLI as a .NET tool (CudaSwa.Cli.<version>.nupkg, command `cudaswa`) into
           artifacts/packages; the version comes from Directory.Build.props
  samples  pack the engine, then build every project under samples/ against that package and
           run it (samples/run.sh; the same step .ci/run takes)
  bundle   write bundle/: the framework-dependent cudaswa, the test executable and the .NET
           runtime, packed for a GPU host without the SDK, plus run.sh (see bundle/README.txt)
  clean    remove build outputs
#>
# A plain (not advanced) script on purpose: arguments after the task, such as BenchmarkDotNet's
# --filter, reach $args untouched instead of being parsed as PowerShell parameters.
param(
    [string] $Task = 'build',
    [string] $Configuration = 'Release'
)

$ErrorActionPreference = 'Stop'
$Rest = @($args)
$tasks = 'build', 'test', 'bench', 'compare', 'kernels', 'pack', 'samples', 'bundle', 'clean'
if ($tasks -notcontains $Task) {
    Write-Error "Unknown task '$Task'. Tasks: $($tasks -join ', '). See the header of build.ps1."
    exit 2
}
Set-Location $PSScriptRoot

function Invoke-Checked([string] $exe, [string[]] $arguments) {
    Write-Host "> $exe $($arguments -join ' ')" -ForegroundColor DarkGray
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "$exe exited with code $LASTEXITCODE" }
}

function Invoke-Kernels {
    $clang = Get-Command clang-14 -ErrorAction SilentlyContinue
    if (-not $clang) {
        Write-Warning 'clang-14 not found: kernel compile check skipped (apt-get install clang-14 to enable it).'
        return
    }
    $out = Join-Path $PSScriptRoot 'artifacts/ptx'
    New-Item -ItemType Directory -Force -Path $out | Out-Null
    $failed = 0
    foreach ($cu in Get-ChildItem kernels -Filter *.cu | Sort-Object Name) {
        $ptx = Join-Path $out ($cu.BaseName + '.ptx')
        & clang-14 -x cuda --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc -nocudalib `
            -Xclang -target-feature -Xclang +ptx70 -std=c++17 -O3 `
            -include kernels/clang_prelude.cuh -Ikernels -S $cu.FullName -o $ptx
        if ($LASTEXITCODE -eq 0) { Write-Host "  ok    $($cu.Name)" } else { Write-Host "  FAIL  $($cu.Name)" -ForegroundColor Red; $failed++ }
    }
    if ($failed -gt 0) { throw "$failed kernel(s) failed to compile" }
}

function Invoke-Bundle {
    # Everything a GPU host without the .NET SDK needs: our framework-dependent builds, the
    # shared .NET runtime of this SDK (packed), and run.sh, which unpacks the runtime and runs
    # the Gpu tests and the GPU benchmarks, writing logs to the folder given as its argument.
    $bundle = Join-Path $PSScriptRoot 'bundle'
    if (Test-Path $bundle) { Remove-Item -Recurse -Force $bundle }
    New-Item -ItemType Directory -Force -Path $bundle | Out-Null
    $stage = Join-Path $PSScriptRoot 'artifacts/bundle-stage'
    if (Test-Path $stage) { Remove-Item -Recurse -Force $stage }
    Invoke-Checked dotnet @('publish', 'src/CudaSwa.Cli', '-c', 'Release', '-r', 'linux-x64', '--self-contained', 'false', '-o', "$stage/app/cli", '-p:UseAppHost=false')
    Invoke-Checked dotnet @('publish', 'tests/CudaSwa.Tests', '-c', 'Release', '-r', 'linux-x64', '--self-contained', 'false', '-o', "$stage/app/tests", '-p:UseAppHost=false')
    # The runtime that runs them: dotnet host, hostfxr and the Microsoft.NETCore.App we built against.
    # `dotnet --list-runtimes` prints e.g. "Microsoft.NETCore.App 10.0.12 [/usr/share/dotnet/shared/Microsoft.NETCore.App]".
    $line = & dotnet --list-runtimes | Where-Object { $_ -like 'Microsoft.NETCore.App 10.*' } | Select-Object -Last 1
    if (-not $line) { throw 'No Microsoft.NETCore.App 10.x runtime found (dotnet --list-runtimes).' }
    $runtimeVersion = $line.Split(' ')[1]
    $sharedDir = $line.Substring($line.IndexOf('[') + 1).TrimEnd(']')
    $dotnetRoot = Split-Path (Split-Path $sharedDir -Parent) -Parent
    New-Item -ItemType Directory -Force -Path "$stage/dotnet/shared/Microsoft.NETCore.App", "$stage/dotnet/host/fxr" | Out-Null
    Copy-Item (Join-Path $dotnetRoot 'dotnet') "$stage/dotnet/"
    Copy-Item -Recurse (Join-Path $sharedDir $runtimeVersion) "$stage/dotnet/shared/Microsoft.NETCore.App/"
    $fxr = Get-ChildItem (Join-Path $dotnetRoot 'host/fxr') | Sort-Object { [version]($_.Name -replace '-.*$', '') } | Select-Object -Last 1
    Copy-Item -Recurse $fxr.FullName "$stage/dotnet/host/fxr/"
    Invoke-Checked tar @('-C', $stage, '-cJf', "$bundle/payload.tar.xz", 'dotnet', 'app')
    Copy-Item 'bench/gpu/run.sh' "$bundle/run.sh"
    Copy-Item 'bench/gpu/README.txt' "$bundle/README.txt"
    if (Test-Path 'bench/pytorch') { Copy-Item -Recurse 'bench/pytorch' "$bundle/pytorch" }
    Set-Content -Path "$bundle/VERSION.txt" -Value "runtime $runtimeVersion`ncommit $(git rev-parse --short HEAD 2>$null)`nbuilt $(Get-Date -Format o)"
    $size = (Get-ChildItem -Recurse $bundle | Measure-Object -Sum Length).Sum / 1MB
    Write-Host ("bundle/ written: {0:N1} MiB" -f $size)
    if ($size -gt 40) { throw ("bundle is {0:N1} MiB, over the 40 MiB limit" -f $size) }
}

switch ($Task) {
    'build' { Invoke-Checked dotnet @('build', 'CudaSwa.sln', '-c', $Configuration) }
    'test' { Invoke-Checked dotnet @('test', '-c', $Configuration) }
    'bench' {
        $benchArgs = @($Rest | Where-Object { $_ -ne '--' })
        if ($benchArgs.Count -eq 0) { $benchArgs = @('--filter', '*') }
        Invoke-Checked dotnet (@('run', '-c', 'Release', '--project', 'bench/CudaSwa.Bench', '--') + $benchArgs)
    }
    'compare' { Invoke-Checked bash @('bench/compare.sh') }
    'kernels' { Invoke-Kernels }
    'pack' {
        Invoke-Checked dotnet @('pack', 'src/CudaSwa', '-c', $Configuration, '-o', 'artifacts/packages')
        Invoke-Checked dotnet @('pack', 'src/CudaSwa.Cli', '-c', $Configuration, '-o', 'artifacts/packages')
    }
    'samples' { Invoke-Checked bash (@('samples/run.sh') + $Rest) }
    'bundle' { Invoke-Bundle }
    'clean' {
        foreach ($d in Get-ChildItem -Recurse -Directory -Include bin, obj) { Remove-Item -Recurse -Force $d.FullName }
        foreach ($d in 'artifacts', 'bundle') { if (Test-Path $d) { Remove-Item -Recurse -Force $d } }
    }
}
