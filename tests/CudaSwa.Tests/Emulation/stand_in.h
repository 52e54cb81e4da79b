// What the stand-in driver (stand_in_driver.cpp) shares with the stand-in cuDNN and cuBLAS built
// into the same library (stand_in_cudnn.cpp, stand_in_cublas.cpp): its lock, its view of the
// calling thread's context, and its table of live allocations, so a library call is held to the
// same rules as a kernel launch (every pointer inside a live allocation large enough, red zones
// intact afterwards, a fault leaves the context failed).
#pragma once
#include <cstddef>
#include <mutex>
#include <string>

namespace standin
{
// The one lock every stand-in entry point takes (recursive: entry points call each other).
std::recursive_mutex& mutex();

// 0 when the driver is initialised and a healthy context is current on the calling thread; else
// the CUresult that says why (with the driver's message for cuGetErrorString).
int context_error();

// Whether [p, p + bytes) lies inside one live allocation (bytes 0: p itself inside one).
bool inside(unsigned long long p, size_t bytes);

// Where a live allocation's red zone was overwritten, or "" when all are intact.
std::string broken_red_zone();

// Puts the context into the sticky error state a faulting kernel leaves, with the message.
void fault(const std::string& message);

std::string hex(unsigned long long v);

// Rounds to nearest even keeping 10 mantissa bits: a float as a tensor core reads it in TF32.
float tf32(float x);

// Splits [0, count) over the machine's cores; body(begin, end) runs on several threads at once.
// Used for speed only: each output element is still computed by one naive loop.
template <class Body> void parallel_for(long long count, Body body);
} // namespace standin

#include <algorithm>
#include <thread>
#include <vector>

template <class Body> void standin::parallel_for(long long count, Body body)
{
    long long workers = std::max(1u, std::thread::hardware_concurrency());
    workers = std::min(workers, count);
    if (workers <= 1)
    {
        if (count > 0) body(0LL, count);
        return;
    }
    std::vector<std::thread> threads;
    long long chunk = (count + workers - 1) / workers;
    for (long long begin = 0; begin < count; begin += chunk)
        threads.emplace_back([=] { body(begin, std::min(count, begin + chunk)); });
    for (auto& t : threads) t.join();
}
