// The runtime side of the kernel emulation, shared by the direct test entry points and the
// stand-in driver: the registry of emulated kernels and one launch.
#pragma once
#include <string>
#include <vector>
#include "emulation_registry.h"

namespace emu
{
struct Kernel
{
    std::string file;
    std::string name;
    void* fn;
    Invoker invoke;
    std::vector<Param> params;
};

const std::vector<Kernel>& kernels();
const Kernel* find_kernel(const char* name);

struct Dim { unsigned x, y, z; };

// Runs a launch to completion: blocks one after another, the threads of each block concurrently.
// Returns false with a message when the launch is invalid or a thread broke an emulation rule
// (a shuffle with absent lanes, a deadlock at a barrier, an exception).
bool launch(const Kernel& kernel, Dim grid, Dim block, void** params, std::string& error);
} // namespace emu
