// Runs emulated kernels. Each CUDA thread is a fiber (its own stack; on x86-64 switched by the
// few instructions below that save the callee-saved registers, elsewhere by swapcontext) and the
// fibers of one block take turns on one OS thread: a thread runs until it reaches a
// barrier (__syncthreads, or the warp barriers behind shuffles and votes) or returns, then the
// next one runs; a barrier lets its waiters go once every thread of its group has arrived or
// returned. Blocks are independent, as on a GPU, and run on the machine's cores side by side
// (__shared__ variables are per OS thread, so per block being run). Switching fibers instead of
// OS threads makes a barrier cost a context switch in user space, not a wake-up of hundreds of
// kernel threads; and a deadlock is certain the moment no thread can run, so it is reported at
// once. Small and strict rather than fast: every rule the emulation cannot honour is reported as
// a launch error, never guessed around.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>
#include <sys/mman.h>
#include <cstdint>
#include <ucontext.h>
#include "cuda_emulation.h"
#include "emulation_runtime.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace emu
{
namespace
{
std::vector<Kernel>& registry()
{
    static std::vector<Kernel> r;
    return r;
}

// ---------------------------------------------------------------- switching fibers

#if defined(__x86_64__)
// emu_switch(save, to): pushes the callee-saved registers and the SSE/x87 control words, stores the
// stack pointer in *save, loads `to` and pops the same from there (System V x86-64: everything else
// is caller-saved, so this is a complete switch). No system call: glibc's swapcontext makes one.
extern "C" void emu_switch(void** save, void* to);
asm(R"(
    .text
    .globl emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

struct SwitchPoint
{
    void* sp = nullptr;
};

// A fresh stack that "returns" into entry with the stack aligned as after a call.
void prepare(SwitchPoint& point, unsigned char* stack, size_t bytes, void (*entry)())
{
    auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15);
    auto* slot = reinterpret_cast<uint64_t*>(top);
    slot[-1] = 0;                                      // entry's own return address: never used
    slot[-2] = reinterpret_cast<uint64_t>(entry);      // popped by emu_switch's ret
    for (int r = 3; r <= 8; ++r) slot[-r] = 0;         // rbp, rbx, r12..r15
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    std::memcpy(&slot[-9], &mxcsr, 4);
    std::memcpy(reinterpret_cast<char*>(&slot[-9]) + 4, &fpucw, 2);
    point.sp = &slot[-9];
}

void jump(SwitchPoint& from, SwitchPoint& to) { emu_switch(&from.sp, to.sp); }
#else
struct SwitchPoint
{
    ucontext_t context;
};

void prepare(SwitchPoint& point, unsigned char* stack, size_t bytes, void (*entry)())
{
    getcontext(&point.context);
    point.context.uc_stack.ss_sp = stack;
    point.context.uc_stack.ss_size = bytes;
    point.context.uc_link = nullptr;
    makecontext(&point.context, entry, 0);
}

void jump(SwitchPoint& from, SwitchPoint& to) { swapcontext(&from.context, &to.context); }
#endif

// A thread that can never continue (deadlock, or a failed launch) leaves its kernel by this exception.
struct Abandon
{
};

// Kept for the tests' API (cudaswa_emu_set_timeout): fibers detect a deadlock at once, so no wait ever times out.
std::atomic<int> g_wait_seconds{30};

std::mutex g_error_mutex;
std::string g_error;

void fail(const std::string& message)
{
    std::lock_guard<std::mutex> lock(g_error_mutex);
    if (g_error.empty()) g_error = message;
}

bool failed_already()
{
    std::lock_guard<std::mutex> lock(g_error_mutex);
    return !g_error.empty();
}

// A reusable barrier whose participants can leave (a thread that returns from the kernel counts
// as arrived at every later barrier, as on the GPU).
struct Barrier
{
    explicit Barrier(int n) : expected(n) {}
    int expected;
    int arrived = 0;
    unsigned long long generation = 0;

    void release()
    {
        arrived = 0;
        ++generation;
    }
};

struct Warp
{
    explicit Warp(int n) : barrier(n), lanes(n) {}
    Barrier barrier;
    int lanes;
    unsigned long long slots[32] = {};
    bool exited[32] = {};
};

struct Block
{
    explicit Block(int n) : barrier(n), threads(n)
    {
        for (int w = 0; w * 32 < n; ++w) warps.push_back(std::make_unique<Warp>(std::min(32, n - w * 32)));
    }
    Barrier barrier;
    int threads;
    std::vector<std::unique_ptr<Warp>> warps;
};

constexpr size_t StackBytes = 256 * 1024;
constexpr size_t GuardBytes = 4096;

// One emulated CUDA thread: its fiber, and what it waits for.
struct Fiber
{
    SwitchPoint point;
    unsigned char* stack = nullptr; // GuardBytes of PROT_NONE below StackBytes of stack
    int linear = 0;
    uint3 index{};
    Warp* warp = nullptr;
    int lane = 0;
    bool started = false;
    bool finished = false;
    Barrier* waiting = nullptr;
    unsigned long long waiting_generation = 0;
    const char* waiting_for = "";

    bool runnable() const { return !finished && (waiting == nullptr || waiting->generation != waiting_generation); }
};

// The block this OS thread runs, its fibers, and the scheduler's own context.
struct Worker
{
    std::vector<Fiber> fibers; // stacks kept between blocks and launches
    SwitchPoint scheduler;
    Fiber* current = nullptr;
    Block* block = nullptr;
    const Kernel* kernel = nullptr;
    void** params = nullptr;
    bool abandoned = false;

    ~Worker()
    {
        for (auto& f : fibers)
            if (f.stack) munmap(f.stack, GuardBytes + StackBytes);
    }
};

thread_local Worker* t_worker = nullptr;

Worker& worker(const char* what)
{
    if (!t_worker || !t_worker->current)
    {
        std::fprintf(stderr, "cuda emulation: %s called outside an emulated kernel\n", what);
        std::abort();
    }
    return *t_worker;
}

// Back to the scheduler until this fiber's barrier lets it go; leaves by Abandon when the block is given up.
void wait_at(Barrier& b, const char* what)
{
    Worker& w = worker(what);
    unsigned long long generation = b.generation;
    if (++b.arrived >= b.expected)
    {
        b.release();
        return;
    }
    Fiber* self = w.current;
    self->waiting = &b;
    self->waiting_generation = generation;
    self->waiting_for = what;
    jump(self->point, w.scheduler);
    self->waiting = nullptr;
    if (w.abandoned) throw Abandon{};
}

void leave(Barrier& b)
{
    --b.expected;
    if (b.arrived > 0 && b.arrived >= b.expected) b.release();
}

// Where every fiber starts; it ends by going back to the scheduler for good.
void fiber_main()
{
    Worker& w = *t_worker;
    Fiber& f = *w.current;
    try
    {
        w.kernel->invoke(w.kernel->fn, w.params);
    }
    catch (const Abandon&)
    {
    }
    catch (const std::exception& e)
    {
        fail(w.kernel->name + ": " + e.what());
    }
    catch (...)
    {
        fail(w.kernel->name + ": unknown exception");
    }
    // A returned thread no longer holds up its warp or block at a barrier.
    f.warp->exited[f.lane] = true;
    leave(f.warp->barrier);
    leave(w.block->barrier);
    f.finished = true;
    jump(f.point, w.scheduler); // never resumed
    std::abort();
}

// Runs one block to completion on this OS thread; false (with the error recorded) when it failed.
bool run_block(Worker& w, const Kernel& kernel, void** params, Dim grid, Dim block, uint3 index)
{
    int threads = (int)(block.x * block.y * block.z);
    Block state(threads);
    w.block = &state;
    w.kernel = &kernel;
    w.params = params;
    w.abandoned = false;
    if ((int)w.fibers.size() < threads) w.fibers.resize(threads);
    blockIdx = index;
    blockDim = dim3{block.x, block.y, block.z};
    gridDim = dim3{grid.x, grid.y, grid.z};
    for (int i = 0; i < threads; ++i)
    {
        Fiber& f = w.fibers[i];
        if (!f.stack)
        {
            void* m = mmap(nullptr, GuardBytes + StackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED)
            {
                fail("could not map a stack for an emulated thread");
                return false;
            }
            mprotect(m, GuardBytes, PROT_NONE); // a stack overflow faults instead of corrupting the neighbour
            f.stack = static_cast<unsigned char*>(m);
        }
        f.linear = i;
        f.index = uint3{(unsigned)i % block.x, (unsigned)i / block.x % block.y, (unsigned)i / (block.x * block.y)};
        f.warp = state.warps[i / 32].get();
        f.lane = i % 32;
        f.started = f.finished = false;
        f.waiting = nullptr;
    }
    auto resume = [&](Fiber& f) {
        w.current = &f;
        threadIdx = f.index;
        if (!f.started)
        {
            f.started = true;
            prepare(f.point, f.stack + GuardBytes, StackBytes, fiber_main);
        }
        jump(w.scheduler, f.point);
        w.current = nullptr;
    };
    for (int done = 0; done < threads;)
    {
        bool progressed = false;
        for (int i = 0; i < threads; ++i)
        {
            Fiber& f = w.fibers[i];
            if (!f.runnable()) continue;
            resume(f);
            progressed = true;
        }
        done = 0;
        for (int i = 0; i < threads; ++i) done += w.fibers[i].finished;
        if (done < threads && !progressed)
        {
            // No thread can go on: name what the first waiting one waits for, then unwind them all.
            const char* what = "";
            for (int i = 0; i < threads && !*what; ++i)
                if (!w.fibers[i].finished) what = w.fibers[i].waiting_for;
            fail(std::string("deadlock: ") + what + " waits for threads that can never arrive (a barrier not reached by every thread of its group?)");
            w.abandoned = true;
            for (int i = 0; i < threads; ++i)
                if (!w.fibers[i].finished) resume(w.fibers[i]);
            break;
        }
    }
    w.block = nullptr;
    return !failed_already();
}

// OS threads kept for the launches' blocks (with their fibers' stacks), started on first need.
class Helpers
{
public:
    // Starts job on `count` helper threads; wait() returns once all of them finished it.
    void start(int count, const std::function<void()>& job)
    {
        std::lock_guard<std::mutex> lock(m_);
        while ((int)threads_.size() < count)
        {
            threads_.emplace_back([this, i = (int)threads_.size()] { loop(i); });
            threads_.back().detach();
        }
        job_ = &job;
        active_ = count;
        remaining_ = count;
        ++generation_;
        cv_.notify_all();
    }

    void wait()
    {
        std::unique_lock<std::mutex> lock(m_);
        done_.wait(lock, [&] { return remaining_ == 0; });
        job_ = nullptr;
    }

private:
    void loop(int i)
    {
        unsigned long long seen = 0;
        std::unique_lock<std::mutex> lock(m_);
        for (;;)
        {
            cv_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            if (i >= active_) continue;
            const auto* job = job_;
            lock.unlock();
            (*job)();
            lock.lock();
            if (--remaining_ == 0) done_.notify_all();
        }
    }

    std::mutex m_;
    std::condition_variable cv_, done_;
    std::vector<std::thread> threads_;
    const std::function<void()>* job_ = nullptr;
    int active_ = 0, remaining_ = 0;
    unsigned long long generation_ = 0;
};

Helpers& helpers()
{
    static Helpers* h = new Helpers(); // never destroyed: its threads are detached and live with the process
    return *h;
}

std::mutex g_launch_mutex;
} // namespace

void register_kernel(const char* file, const char* name, void* fn, Invoker invoke, const Param* params, int count)
{
    registry().push_back(Kernel{file, name, fn, invoke, std::vector<Param>(params, params + count)});
}

const std::vector<Kernel>& kernels() { return registry(); }

const Kernel* find_kernel(const char* name)
{
    for (const auto& k : registry())
        if (k.name == name) return &k;
    return nullptr;
}

void syncthreads()
{
    Worker& w = worker("__syncthreads");
    wait_at(w.block->barrier, "__syncthreads");
}

int lane_id() { return worker("lane_id").current->lane; }

unsigned long long warp_exchange(unsigned mask, unsigned long long bits, int source_lane, bool own, const char* what)
{
    Fiber& c = *worker(what).current;
    Warp& w = *c.warp;
    unsigned present = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1);
    if ((mask & present) != present)
        fail(std::string(what) + ": mask leaves out lanes of the warp; the emulation runs converged warps only");
    w.slots[c.lane] = bits;
    wait_at(w.barrier, what);
    unsigned long long result = bits;
    if (own) result = bits;
    else if (source_lane < 0 || source_lane >= w.lanes)
        fail(std::string(what) + ": reads lane " + std::to_string(source_lane) + ", which this warp of " + std::to_string(w.lanes) + " lanes does not have");
    else if (w.exited[source_lane])
        fail(std::string(what) + ": reads lane " + std::to_string(source_lane) + ", which has already returned");
    else result = w.slots[source_lane];
    wait_at(w.barrier, what);
    return result;
}

unsigned warp_ballot(unsigned mask, int predicate)
{
    Fiber& c = *worker("vote").current;
    Warp& w = *c.warp;
    w.slots[c.lane] = predicate != 0;
    wait_at(w.barrier, "__ballot_sync");
    unsigned bits = 0;
    for (int l = 0; l < w.lanes; ++l)
        if ((mask >> l & 1u) && !w.exited[l] && w.slots[l]) bits |= 1u << l;
    wait_at(w.barrier, "__ballot_sync");
    return bits;
}

bool launch(const Kernel& kernel, Dim grid, Dim block, void** params, std::string& error)
{
    long long threads = (long long)block.x * block.y * block.z;
    if (threads < 1 || threads > 1024 || block.z > 64 || grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535)
    {
        error = "invalid launch configuration for " + kernel.name + ": block " + std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
                std::to_string(block.z) + ", grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" + std::to_string(grid.z);
        return false;
    }
    if (!kernel.params.empty() && !params)
    {
        error = "launch of " + kernel.name + " without parameters";
        return false;
    }
    std::lock_guard<std::mutex> launch_lock(g_launch_mutex);
    {
        std::lock_guard<std::mutex> lock(g_error_mutex);
        g_error.clear();
    }
    // Blocks in order of their linear index, handed to the OS threads that ask next.
    unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    std::atomic<unsigned long long> next{0};
    std::mutex where_mutex;
    std::string where;
    std::function<void()> work = [&] {
        static thread_local Worker w; // its fibers' stacks serve every later launch on this OS thread
        t_worker = &w;
        for (unsigned long long b; (b = next.fetch_add(1)) < blocks && !failed_already();)
        {
            uint3 index{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((unsigned long long)grid.x * grid.y))};
            if (!run_block(w, kernel, params, grid, block, index))
            {
                std::lock_guard<std::mutex> lock(where_mutex);
                if (where.empty())
                    where = "block (" + std::to_string(index.x) + "," + std::to_string(index.y) + "," + std::to_string(index.z) + ")";
                next = blocks; // the others stop at their next block
            }
        }
        t_worker = nullptr;
    };
    unsigned long long cores = std::max(1u, std::thread::hardware_concurrency());
    int helpers = (int)std::min<unsigned long long>(cores, blocks) - 1;
    if (helpers > 0) emu::helpers().start(helpers, work);
    work();
    if (helpers > 0) emu::helpers().wait();
    std::lock_guard<std::mutex> lock(g_error_mutex);
    if (!g_error.empty())
    {
        error = "emulated kernel " + kernel.name + ", " + where + ": " + g_error;
        return false;
    }
    return true;
}
} // namespace emu

// ---------------------------------------------------------------- direct entry points for the tests

extern "C" __attribute__((visibility("default"))) int cudaswa_emu_kernel_count() { return (int)emu::kernels().size(); }

extern "C" __attribute__((visibility("default"))) const char* cudaswa_emu_kernel_file(int k) { return emu::kernels()[k].file.c_str(); }

extern "C" __attribute__((visibility("default"))) const char* cudaswa_emu_kernel_name(int k) { return emu::kernels()[k].name.c_str(); }

extern "C" __attribute__((visibility("default"))) int cudaswa_emu_param_count(int k) { return (int)emu::kernels()[k].params.size(); }

extern "C" __attribute__((visibility("default"))) void cudaswa_emu_param(int k, int p, int* offset, int* size, int* is_float, int* is_pointer)
{
    const emu::Param& q = emu::kernels()[k].params[p];
    *offset = q.offset;
    *size = q.size;
    *is_float = q.is_float;
    *is_pointer = q.is_pointer;
}

// Sets how long a barrier waits before the launch counts as deadlocked; returns the previous value.
extern "C" __attribute__((visibility("default"))) int cudaswa_emu_set_timeout(int seconds) { return emu::g_wait_seconds.exchange(seconds); }

// Runs kernel k on host memory: 0 on success, else 1 with the message in error.
extern "C" __attribute__((visibility("default"))) int cudaswa_emu_launch(int k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                                                                      void** params, char* error, int error_size)
{
    std::string message;
    bool ok = emu::launch(emu::kernels()[k], emu::Dim{gx, gy, gz}, emu::Dim{bx, by, bz}, params, message);
    if (!ok && error && error_size > 0)
    {
        std::strncpy(error, message.c_str(), (size_t)error_size - 1);
        error[error_size - 1] = 0;
    }
    return ok ? 0 : 1;
}
