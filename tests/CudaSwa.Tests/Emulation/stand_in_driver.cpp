// A stand-in for the CUDA driver (libcuda) in tests: the entry points the engine uses, with the
// same C signatures, backed by host memory and the emulated kernels. The engine loads it by its
// full path (CuDriver.FromFile) — the production loader never finds it. It is strict where the
// real driver is: a context must be current, device pointers must lie inside live allocations
// (kernel pointer arguments included), copies must stay inside them, a module must contain the
// function asked for, and a failed kernel leaves the context in error until it is released. On
// top it checks what a GPU would not report: writes past either end of an allocation (red zones
// checked after every launch and at free), and it poisons fresh allocations (all bits set: NaN
// as float) so reads of memory never written show up.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>
#include "emulation_runtime.h"
#include "stand_in.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct StandInContext* CUcontext;
typedef struct StandInModule* CUmodule;
typedef struct StandInFunction* CUfunction;
typedef struct StandInEvent* CUevent;
typedef void* CUstream;

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace
{
enum : CUresult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    InvalidHandle = 400,
    NotFound = 500,
    IllegalAddress = 700,
    LaunchFailed = 719,
};

constexpr size_t RedZone = 256;
constexpr unsigned char RedZoneByte = 0xA5;
constexpr unsigned long long TotalMemory = 16ull << 30;
constexpr int Multiprocessors = 4; // small, so grid-stride loops take several passes

struct StandInContext
{
};
StandInContext g_context_object;
CUcontext const g_context = reinterpret_cast<CUcontext>(&g_context_object);

struct Allocation
{
    unsigned char* raw;
    size_t size;
};

struct Module
{
    std::string image;
    bool ptx;
};

struct Event
{
    std::chrono::steady_clock::time_point at;
    bool recorded = false;
};

std::recursive_mutex& g_mutex = standin::mutex();
bool g_initialized = false;
int g_retained = 0;
CUresult g_sticky = Success;
CUresult g_last_code = Success;
std::string g_last_message;
std::map<CUdeviceptr, Allocation> g_allocations;
size_t g_allocated = 0;
unsigned long long g_allocation_count = 0;
std::set<Module*> g_modules;
std::set<Event*> g_events;
thread_local CUcontext t_current = nullptr;
unsigned long long g_synchronizations = 0;
std::string g_fail_next_synchronize; // a test's stand-in for an asynchronous fault, reported by the next wait

CUresult failed(CUresult code, const std::string& message)
{
    g_last_code = code;
    g_last_message = message;
    return code;
}

// The common preamble of a call that needs a live, current, healthy context.
CUresult need_context()
{
    if (!g_initialized) return NotInitialized;
    if (t_current != g_context || g_retained == 0) return failed(InvalidContext, "no current context (cuCtxSetCurrent with the primary context first)");
    return g_sticky;
}

// The allocation holding [p, p+bytes), or nullptr.
const Allocation* holding(CUdeviceptr p, size_t bytes, CUdeviceptr* base = nullptr)
{
    auto it = g_allocations.upper_bound(p);
    if (it == g_allocations.begin()) return nullptr;
    --it;
    if (p < it->first || p + bytes > it->first + it->second.size) return nullptr;
    if (base) *base = it->first;
    return &it->second;
}

std::string hex(unsigned long long v)
{
    char b[32];
    std::snprintf(b, sizeof b, "0x%llx", v);
    return b;
}

CUresult check_range(CUdeviceptr p, size_t bytes, const char* what)
{
    if (!holding(p, bytes))
        return failed(InvalidValue, std::string(what) + ": device range " + hex(p) + " + " + std::to_string(bytes) + " bytes is not inside one live allocation");
    return Success;
}

// Red zones of every live allocation: a kernel that wrote past either end of its buffer.
std::string broken_red_zone()
{
    for (const auto& [base, a] : g_allocations)
    {
        size_t padded = (a.size + 255) / 256 * 256;
        for (size_t i = 0; i < RedZone; ++i)
        {
            if (a.raw[i] != RedZoneByte)
                return "a write " + std::to_string(RedZone - i) + " bytes before the allocation at " + hex(base) + " (" + std::to_string(a.size) + " bytes)";
            if (a.raw[RedZone + padded + i] != RedZoneByte)
                return "a write " + std::to_string(padded - a.size + i) + " bytes past the end of the allocation at " + hex(base) + " (" + std::to_string(a.size) + " bytes)";
        }
        for (size_t i = a.size; i < padded; ++i)
            if (a.raw[RedZone + i] != RedZoneByte)
                return "a write " + std::to_string(i - a.size) + " bytes past the end of the allocation at " + hex(base) + " (" + std::to_string(a.size) + " bytes)";
    }
    return "";
}

size_t image_size(const unsigned char* image)
{
    if (std::memcmp(image, "\x7f" "ELF", 4) == 0 && image[4] == 2)
    {
        auto u16 = [&](size_t at) { uint16_t v; std::memcpy(&v, image + at, 2); return (size_t)v; };
        auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, image + at, 4); return (size_t)v; };
        auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, image + at, 8); return (size_t)v; };
        size_t shoff = u64(0x28), shentsize = u16(0x3A), shnum = u16(0x3C), phoff = u64(0x20), phentsize = u16(0x36), phnum = u16(0x38);
        size_t end = std::max(shoff + shentsize * shnum, phoff + phentsize * phnum);
        for (size_t i = 0; i < shnum; ++i)
        {
            size_t h = shoff + i * shentsize;
            if (u32(h + 4) != 8 /* SHT_NOBITS */) end = std::max(end, u64(h + 0x18) + u64(h + 0x20));
        }
        return end;
    }
    return 0;
}

bool image_has(const Module& m, const std::string& name)
{
    if (m.ptx)
    {
        for (size_t at = m.image.find(".entry " + name); at != std::string::npos; at = m.image.find(".entry " + name, at + 1))
        {
            char next = at + 7 + name.size() < m.image.size() ? m.image[at + 7 + name.size()] : 0;
            if (next == '(' || next == ' ' || next == '\n' || next == '\t') return true;
        }
        return false;
    }
    return m.image.find(std::string("\0", 1) + name + std::string("\0", 1)) != std::string::npos;
}

const char* error_name(CUresult r)
{
    switch (r)
    {
    case Success: return "CUDA_SUCCESS";
    case InvalidValue: return "CUDA_ERROR_INVALID_VALUE";
    case OutOfMemory: return "CUDA_ERROR_OUT_OF_MEMORY";
    case NotInitialized: return "CUDA_ERROR_NOT_INITIALIZED";
    case InvalidDevice: return "CUDA_ERROR_INVALID_DEVICE";
    case InvalidImage: return "CUDA_ERROR_INVALID_IMAGE";
    case InvalidContext: return "CUDA_ERROR_INVALID_CONTEXT";
    case InvalidHandle: return "CUDA_ERROR_INVALID_HANDLE";
    case NotFound: return "CUDA_ERROR_NOT_FOUND";
    case IllegalAddress: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case LaunchFailed: return "CUDA_ERROR_LAUNCH_FAILED";
    default: return nullptr;
    }
}

void destroy_context()
{
    for (auto& [base, a] : g_allocations) std::free(a.raw);
    g_allocations.clear();
    g_allocated = 0;
    for (Module* m : g_modules) delete m;
    g_modules.clear();
    for (Event* e : g_events) delete e;
    g_events.clear();
    g_sticky = Success;
}
} // namespace

// ---------------------------------------------------------------- shared with the stand-in cuDNN and cuBLAS (stand_in.h)

std::recursive_mutex& standin::mutex()
{
    static std::recursive_mutex m;
    return m;
}

int standin::context_error()
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    return need_context();
}

bool standin::inside(unsigned long long p, size_t bytes) { std::lock_guard<std::recursive_mutex> lock(g_mutex); return holding(p, bytes) != nullptr; }

std::string standin::broken_red_zone() { std::lock_guard<std::recursive_mutex> lock(g_mutex); return ::broken_red_zone(); }

void standin::fault(const std::string& message)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    g_sticky = failed(IllegalAddress, message);
}

std::string standin::hex(unsigned long long v) { return ::hex(v); }

float standin::tf32(float x)
{
    if (!std::isfinite(x)) return x;
    uint32_t b;
    std::memcpy(&b, &x, 4);
    b += 0x0FFFu + ((b >> 13) & 1u);
    b &= 0xFFFFE000u;
    std::memcpy(&x, &b, 4);
    return x;
}

// ---------------------------------------------------------------- identity (tests only)

EXPORT const char* cudaswaStandInDriver() { return "CudaSwa stand-in driver: host memory, emulated kernels"; }

/// Live allocations and their bytes, and allocations made since load (buffer-lifetime checks).
EXPORT void cudaswaStandInMemory(unsigned long long* live, unsigned long long* bytes, unsigned long long* made)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    *live = g_allocations.size();
    *bytes = g_allocated;
    *made = g_allocation_count;
}

/// cuCtxSynchronize calls since load (tests of launch-blocking mode).
EXPORT unsigned long long cudaswaStandInSynchronizations()
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    return g_synchronizations;
}

/// Makes the next cuCtxSynchronize fail as after an asynchronous fault of earlier work (tests of error paths).
EXPORT void cudaswaStandInFailNextSynchronize(const char* message)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    g_fail_next_synchronize = message ? message : "fault";
}

// ---------------------------------------------------------------- initialisation and devices

EXPORT CUresult cuInit(unsigned int flags)
{
    if (flags != 0) return failed(InvalidValue, "cuInit flags must be 0");
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    g_initialized = true;
    return Success;
}

EXPORT CUresult cuDriverGetVersion(int* version)
{
    if (!version) return InvalidValue;
    *version = 13000;
    return Success;
}

EXPORT CUresult cuDeviceGetCount(int* count)
{
    if (!g_initialized) return NotInitialized;
    if (!count) return InvalidValue;
    *count = 1;
    return Success;
}

EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal)
{
    if (!g_initialized) return NotInitialized;
    if (!device) return InvalidValue;
    if (ordinal != 0) return InvalidDevice;
    *device = 0;
    return Success;
}

EXPORT CUresult cuDeviceGetName(char* name, int length, CUdevice device)
{
    if (!g_initialized) return NotInitialized;
    if (device != 0) return InvalidDevice;
    if (!name || length <= 0) return InvalidValue;
    std::snprintf(name, (size_t)length, "CudaSwa stand-in (host memory, emulated kernels)");
    return Success;
}

EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device)
{
    if (!g_initialized) return NotInitialized;
    if (device != 0) return InvalidDevice;
    if (!value) return InvalidValue;
    switch (attribute)
    {
    case 1: *value = 1024; return Success;          // max threads per block
    case 2: *value = 1024; return Success;          // max block x
    case 3: *value = 1024; return Success;          // max block y
    case 4: *value = 64; return Success;            // max block z
    case 5: *value = 2147483647; return Success;    // max grid x
    case 6: case 7: *value = 65535; return Success; // max grid y, z
    case 8: *value = 49152; return Success;         // shared memory per block
    case 10: *value = 32; return Success;           // warp size
    case 16: *value = Multiprocessors; return Success;
    case 75: *value = 9; return Success;            // compute capability 9.0
    case 76: *value = 0; return Success;
    default: return failed(InvalidValue, "device attribute " + std::to_string(attribute) + " is not provided by the stand-in");
    }
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device)
{
    if (!g_initialized) return NotInitialized;
    if (device != 0) return InvalidDevice;
    *bytes = TotalMemory;
    return Success;
}

// ---------------------------------------------------------------- contexts

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice device)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (!g_initialized) return NotInitialized;
    if (device != 0) return InvalidDevice;
    ++g_retained;
    *context = g_context;
    return Success;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (!g_initialized) return NotInitialized;
    if (device != 0) return InvalidDevice;
    if (g_retained == 0) return InvalidContext;
    if (--g_retained == 0) destroy_context(); // as the real driver: the last release destroys the context and everything in it
    return Success;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext context)
{
    if (!g_initialized) return NotInitialized;
    if (context != nullptr && context != g_context) return InvalidContext;
    t_current = context;
    return Success;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext* context)
{
    if (!g_initialized) return NotInitialized;
    *context = t_current;
    return Success;
}

EXPORT CUresult cuCtxSynchronize()
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    ++g_synchronizations;
    if (CUresult r = need_context()) return r;
    if (!g_fail_next_synchronize.empty())
    {
        // What a GPU reports for a fault of work queued earlier: the wait fails, the context stays failed.
        g_sticky = failed(IllegalAddress, g_fail_next_synchronize);
        g_fail_next_synchronize.clear();
        return g_sticky;
    }
    return Success;
}

// ---------------------------------------------------------------- memory

EXPORT CUresult cuMemGetInfo_v2(size_t* free, size_t* total)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    *free = TotalMemory - g_allocated;
    *total = TotalMemory;
    return Success;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* pointer, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (!pointer || bytes == 0) return failed(InvalidValue, "cuMemAlloc of 0 bytes");
    if (bytes > TotalMemory - g_allocated) return OutOfMemory;
    size_t padded = (bytes + 255) / 256 * 256;
    auto* raw = static_cast<unsigned char*>(std::aligned_alloc(256, padded + 2 * RedZone));
    if (!raw) return OutOfMemory;
    std::memset(raw, RedZoneByte, RedZone);
    std::memset(raw + RedZone, 0xFF, bytes); // poison: NaN as float, -1 as int
    std::memset(raw + RedZone + bytes, RedZoneByte, padded - bytes + RedZone);
    CUdeviceptr base = reinterpret_cast<CUdeviceptr>(raw + RedZone);
    g_allocations[base] = Allocation{raw, bytes};
    g_allocated += bytes;
    ++g_allocation_count;
    *pointer = base;
    return Success;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr pointer)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    auto it = g_allocations.find(pointer);
    if (it == g_allocations.end()) return failed(InvalidValue, "cuMemFree of " + hex(pointer) + ", which is not the start of a live allocation");
    std::string broken = broken_red_zone();
    g_allocated -= it->second.size;
    std::free(it->second.raw);
    g_allocations.erase(it);
    if (!broken.empty()) return g_sticky = failed(IllegalAddress, "memory corruption found at cuMemFree: " + broken);
    return Success;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr destination, const void* source, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (CUresult r = check_range(destination, bytes, "cuMemcpyHtoD")) return r;
    std::memcpy(reinterpret_cast<void*>(destination), source, bytes);
    return Success;
}

EXPORT CUresult cuMemcpyDtoH_v2(void* destination, CUdeviceptr source, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (CUresult r = check_range(source, bytes, "cuMemcpyDtoH")) return r;
    std::memcpy(destination, reinterpret_cast<const void*>(source), bytes);
    return Success;
}

EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr destination, CUdeviceptr source, size_t bytes, CUstream stream)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (stream != nullptr) return failed(InvalidHandle, "the stand-in has only the legacy default stream");
    if (CUresult r = check_range(source, bytes, "cuMemcpyDtoDAsync (source)")) return r;
    if (CUresult r = check_range(destination, bytes, "cuMemcpyDtoDAsync (destination)")) return r;
    std::memmove(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
    return Success;
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr destination, unsigned int value, size_t count, CUstream stream)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (stream != nullptr) return failed(InvalidHandle, "the stand-in has only the legacy default stream");
    if (destination % 4 != 0) return failed(InvalidValue, "cuMemsetD32 needs a 4-byte aligned address");
    if (CUresult r = check_range(destination, count * 4, "cuMemsetD32Async")) return r;
    auto* p = reinterpret_cast<unsigned int*>(destination);
    for (size_t i = 0; i < count; ++i) p[i] = value;
    return Success;
}

// ---------------------------------------------------------------- modules and kernels

EXPORT CUresult cuModuleLoadData(CUmodule* module, const void* image)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    if (!module || !image) return InvalidValue;
    auto* bytes = static_cast<const unsigned char*>(image);
    auto* m = new Module();
    if (size_t n = image_size(bytes))
    {
        m->image.assign(reinterpret_cast<const char*>(bytes), n);
        m->ptx = false;
    }
    else if (std::strstr(static_cast<const char*>(image), ".version") && std::strstr(static_cast<const char*>(image), ".entry"))
    {
        m->image = static_cast<const char*>(image);
        m->ptx = true;
    }
    else
    {
        delete m;
        return failed(InvalidImage, "cuModuleLoadData: neither a 64-bit ELF (CUBIN) nor PTX text");
    }
    g_modules.insert(m);
    *module = reinterpret_cast<CUmodule>(m);
    return Success;
}

EXPORT CUresult cuModuleUnload(CUmodule module)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context(); r && r != g_sticky) return r;
    auto* m = reinterpret_cast<Module*>(module);
    if (!g_modules.erase(m)) return InvalidHandle;
    delete m;
    return Success;
}

EXPORT CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    auto* m = reinterpret_cast<Module*>(module);
    if (!g_modules.count(m)) return InvalidHandle;
    if (!image_has(*m, name)) return failed(NotFound, std::string("cuModuleGetFunction: the module's image has no kernel ") + name);
    const emu::Kernel* k = emu::find_kernel(name);
    if (!k) return failed(NotFound, std::string("cuModuleGetFunction: kernel ") + name + " is in the image but was not built into the emulation");
    *function = reinterpret_cast<CUfunction>(const_cast<emu::Kernel*>(k));
    return Success;
}

EXPORT CUresult cuFuncGetParamInfo(CUfunction function, size_t index, size_t* offset, size_t* size)
{
    auto* k = reinterpret_cast<const emu::Kernel*>(function);
    if (!k) return InvalidHandle;
    if (index >= k->params.size()) return InvalidValue;
    *offset = (size_t)k->params[index].offset;
    *size = (size_t)k->params[index].size;
    return Success;
}

EXPORT CUresult cuLaunchKernel(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared_bytes, CUstream stream, void** params, void** extra)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    auto* k = reinterpret_cast<const emu::Kernel*>(function);
    bool known = false;
    for (const auto& e : emu::kernels()) known |= &e == k;
    if (!known) return failed(InvalidHandle, "cuLaunchKernel: not a function handle from cuModuleGetFunction");
    if (stream != nullptr) return failed(InvalidHandle, "the stand-in has only the legacy default stream");
    if (shared_bytes != 0) return failed(InvalidValue, "dynamic shared memory is not emulated");
    std::vector<void*> unpacked;
    if (!params && extra)
    {
        // CU_LAUNCH_PARAM_BUFFER_POINTER (1), CU_LAUNCH_PARAM_BUFFER_SIZE (2), CU_LAUNCH_PARAM_END (0)
        char* buffer = nullptr;
        size_t buffer_size = 0;
        for (void** e = extra; *e != nullptr; e += 2)
        {
            if (*e == reinterpret_cast<void*>(1)) buffer = static_cast<char*>(e[1]);
            else if (*e == reinterpret_cast<void*>(2)) buffer_size = *static_cast<size_t*>(e[1]);
            else return failed(InvalidValue, "cuLaunchKernel: unknown entry in extra");
        }
        size_t needed = k->params.empty() ? 0 : (size_t)(k->params.back().offset + k->params.back().size);
        if (!buffer || buffer_size < needed) return failed(InvalidValue, "cuLaunchKernel: extra's argument buffer is missing or too small");
        for (const auto& p : k->params) unpacked.push_back(buffer + p.offset);
        params = unpacked.data();
    }
    // Every pointer argument must point into a live allocation (or be null).
    for (size_t i = 0; i < k->params.size(); ++i)
    {
        if (!k->params[i].is_pointer) continue;
        CUdeviceptr p;
        std::memcpy(&p, params[i], sizeof p);
        if (p != 0 && !holding(p, 0))
            return failed(InvalidValue, "launch of " + k->name + ": pointer argument " + std::to_string(i) + " (" + hex(p) + ") is not inside a live allocation");
    }
    std::string error;
    if (!emu::launch(*k, emu::Dim{gx, gy, gz}, emu::Dim{bx, by, bz}, params, error))
    {
        if (error.rfind("invalid launch configuration", 0) == 0) return failed(InvalidValue, error);
        return g_sticky = failed(LaunchFailed, error);
    }
    std::string broken = broken_red_zone();
    if (!broken.empty()) return g_sticky = failed(IllegalAddress, "kernel " + k->name + " made " + broken);
    return Success;
}

// ---------------------------------------------------------------- events

EXPORT CUresult cuEventCreate(CUevent* event, unsigned int flags)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    (void)flags;
    auto* e = new Event();
    g_events.insert(e);
    *event = reinterpret_cast<CUevent>(e);
    return Success;
}

EXPORT CUresult cuEventRecord(CUevent event, CUstream stream)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    auto* e = reinterpret_cast<Event*>(event);
    if (!g_events.count(e) || stream != nullptr) return InvalidHandle;
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
    return Success;
}

EXPORT CUresult cuEventSynchronize(CUevent event)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    return g_events.count(reinterpret_cast<Event*>(event)) ? Success : InvalidHandle;
}

EXPORT CUresult cuEventDestroy_v2(CUevent event)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    auto* e = reinterpret_cast<Event*>(event);
    if (!g_events.erase(e)) return InvalidHandle;
    delete e;
    return Success;
}

EXPORT CUresult cuEventElapsedTime_v2(float* milliseconds, CUevent start, CUevent end)
{
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (CUresult r = need_context()) return r;
    auto *a = reinterpret_cast<Event*>(start), *b = reinterpret_cast<Event*>(end);
    if (!g_events.count(a) || !g_events.count(b)) return InvalidHandle;
    if (!a->recorded || !b->recorded) return failed(InvalidValue, "cuEventElapsedTime of an event never recorded");
    *milliseconds = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return Success;
}

// ---------------------------------------------------------------- errors

EXPORT CUresult cuGetErrorName(CUresult error, const char** name)
{
    const char* n = error_name(error);
    if (!n) return InvalidValue;
    *name = n;
    return Success;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char** text)
{
    // The stand-in's own words for the last failure (which kernel, which rule), where it has them.
    static thread_local std::string copy;
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (!error_name(error)) return InvalidValue;
    copy = error == g_last_code && !g_last_message.empty() ? g_last_message : std::string(error_name(error));
    *text = copy.c_str();
    return Success;
}
