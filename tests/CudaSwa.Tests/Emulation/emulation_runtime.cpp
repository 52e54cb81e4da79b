// Runs emulated kernels: the blocks of a launch one after another, the threads of a block
// concurrently on real threads, with real barriers for __syncthreads and for the warp exchanges
// behind shuffles and votes. Each CUDA thread runs start to finish on one OS thread. A block
// starts on a few workers that take its threads in order; a thread that has to wait at a barrier
// first asks for another worker, so every thread a barrier waits for gets started (a block with
// __syncthreads ends up with all its threads alive at once, a kernel without barriers costs only
// a few thread switches per block). Small and strict rather than fast: every rule the emulation
// cannot honour is reported as a launch error, never guessed around.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
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

// A waiting thread that gives up (deadlock) leaves its kernel by this exception.
struct Abandon
{
};

// How long a thread waits at a barrier before the launch is declared deadlocked
// (CUDASWA_EMULATION_TIMEOUT_S, default 30 s; the tests shorten it to provoke a deadlock).
std::atomic<int> g_wait_seconds{[] {
    const char* s = std::getenv("CUDASWA_EMULATION_TIMEOUT_S");
    int v = s ? std::atoi(s) : 0;
    return v > 0 ? v : 30;
}()};

std::chrono::seconds wait_limit() { return std::chrono::seconds(g_wait_seconds.load()); }

std::mutex g_error_mutex;
std::string g_error;

void fail(const std::string& message)
{
    std::lock_guard<std::mutex> lock(g_error_mutex);
    if (g_error.empty()) g_error = message;
}

struct BlockRun;
thread_local BlockRun* t_run = nullptr;
void before_blocking(); // defined with BlockRun: makes sure a thread about to wait does not hold up unstarted ones

// A reusable barrier whose participants can leave (a thread that returns from the kernel counts
// as arrived at every later barrier, as on the GPU). Waits time out: a deadlock becomes an error.
class Barrier
{
public:
    explicit Barrier(int expected) : expected_(expected) {}

    void arrive_and_wait(const char* what)
    {
        std::unique_lock<std::mutex> lock(m_);
        unsigned long long generation = generation_;
        if (++arrived_ >= expected_)
        {
            release();
            return;
        }
        lock.unlock();
        before_blocking();
        lock.lock();
        if (generation_ != generation) return; // released while a worker was being found
        if (!cv_.wait_for(lock, wait_limit(), [&] { return generation_ != generation || abandoned_; }))
        {
            abandoned_ = true;
            cv_.notify_all();
            lock.unlock();
            fail(std::string("deadlock: ") + what + " waited " + std::to_string(wait_limit().count()) +
                 " s for threads that never arrived (a barrier not reached by every thread of its group?)");
            throw Abandon{};
        }
        if (abandoned_) throw Abandon{};
    }

    void leave()
    {
        std::lock_guard<std::mutex> lock(m_);
        --expected_;
        if (arrived_ > 0 && arrived_ >= expected_) release();
    }

private:
    void release()
    {
        arrived_ = 0;
        ++generation_;
        cv_.notify_all();
    }

    std::mutex m_;
    std::condition_variable cv_;
    int expected_;
    int arrived_ = 0;
    unsigned long long generation_ = 0;
    bool abandoned_ = false;
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

struct ThreadContext
{
    Block* block;
    Warp* warp;
    int lane;
    int linear;
};

thread_local ThreadContext* t_context = nullptr;

ThreadContext& context(const char* what)
{
    if (!t_context)
    {
        std::fprintf(stderr, "cuda emulation: %s called outside an emulated kernel\n", what);
        std::abort();
    }
    return *t_context;
}

// One block being run: its threads are handed out in order to whichever worker asks next.
struct BlockRun
{
    const Kernel* kernel;
    void** params;
    Dim grid, block;
    uint3 index;
    Block* state;
    int threads;
    std::atomic<int> next{0};
    std::atomic<int> finished{0};
    std::atomic<int> workers{0}; // asked for and not yet done with this block: it must outlive them
    std::mutex m;
    std::condition_variable all_done;

    bool unstarted() const { return next.load() < threads; }

    int pending_workers() const { return workers.load(); }

    void run_thread(int i)
    {
        threadIdx = uint3{(unsigned)i % block.x, (unsigned)i / block.x % block.y, (unsigned)i / (block.x * block.y)};
        blockIdx = index;
        blockDim = dim3{block.x, block.y, block.z};
        gridDim = dim3{grid.x, grid.y, grid.z};
        ThreadContext c{state, state->warps[i / 32].get(), i % 32, i};
        t_context = &c;
        try
        {
            kernel->invoke(kernel->fn, params);
        }
        catch (const Abandon&)
        {
        }
        catch (const std::exception& e)
        {
            fail(kernel->name + ": " + e.what());
        }
        catch (...)
        {
            fail(kernel->name + ": unknown exception");
        }
        // A returned thread no longer holds up its warp or block at a barrier.
        c.warp->exited[c.lane] = true;
        c.warp->barrier.leave();
        state->barrier.leave();
        t_context = nullptr;
    }

    // A worker's share of the block: threads in order until none is left.
    void work()
    {
        t_run = this;
        for (int i; (i = next.fetch_add(1)) < threads;)
        {
            run_thread(i);
            if (finished.fetch_add(1) + 1 == threads)
            {
                std::lock_guard<std::mutex> lock(m);
                all_done.notify_all();
            }
        }
        t_run = nullptr;
        workers.fetch_sub(1); // the last touch of this block
    }
};

// Idle OS threads waiting for a block to work on; new ones are started when none is idle.
class Pool
{
public:
    void request(BlockRun* run)
    {
        run->workers.fetch_add(1);
        std::lock_guard<std::mutex> lock(m_);
        requests_.push_back(run);
        if ((int)requests_.size() > idle_)
            std::thread([this] { work(); }).detach();
        else
            cv_.notify_one();
    }

private:
    void work()
    {
        std::unique_lock<std::mutex> lock(m_);
        for (;;)
        {
            ++idle_;
            cv_.wait(lock, [&] { return !requests_.empty(); });
            --idle_;
            BlockRun* run = requests_.front();
            requests_.pop_front();
            lock.unlock();
            run->work();
            lock.lock();
        }
    }

    std::mutex m_;
    std::condition_variable cv_;
    std::deque<BlockRun*> requests_;
    int idle_ = 0;
};

Pool& pool()
{
    static Pool* p = new Pool(); // never destroyed: its threads are detached and live with the process
    return *p;
}

void before_blocking()
{
    BlockRun* run = t_run;
    if (run && run->unstarted()) pool().request(run);
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
    context("__syncthreads").block->barrier.arrive_and_wait("__syncthreads");
}

int lane_id() { return context("lane_id").lane; }

unsigned long long warp_exchange(unsigned mask, unsigned long long bits, int source_lane, bool own, const char* what)
{
    ThreadContext& c = context(what);
    Warp& w = *c.warp;
    unsigned present = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1);
    if ((mask & present) != present)
        fail(std::string(what) + ": mask leaves out lanes of the warp; the emulation runs converged warps only");
    w.slots[c.lane] = bits;
    w.barrier.arrive_and_wait(what);
    unsigned long long result = bits;
    if (own) result = bits;
    else if (source_lane < 0 || source_lane >= w.lanes)
        fail(std::string(what) + ": reads lane " + std::to_string(source_lane) + ", which this warp of " + std::to_string(w.lanes) + " lanes does not have");
    else if (w.exited[source_lane])
        fail(std::string(what) + ": reads lane " + std::to_string(source_lane) + ", which has already returned");
    else result = w.slots[source_lane];
    w.barrier.arrive_and_wait(what);
    return result;
}

unsigned warp_ballot(unsigned mask, int predicate)
{
    ThreadContext& c = context("vote");
    Warp& w = *c.warp;
    w.slots[c.lane] = predicate != 0;
    w.barrier.arrive_and_wait("__ballot_sync");
    unsigned bits = 0;
    for (int l = 0; l < w.lanes; ++l)
        if ((mask >> l & 1u) && !w.exited[l] && w.slots[l]) bits |= 1u << l;
    w.barrier.arrive_and_wait("__ballot_sync");
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
    int workers = std::min<int>((int)threads, (int)std::max(2u, std::thread::hardware_concurrency()));
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx)
            {
                Block state((int)threads);
                BlockRun run;
                run.kernel = &kernel;
                run.params = params;
                run.grid = grid;
                run.block = block;
                run.index = uint3{bx, by, bz};
                run.state = &state;
                run.threads = (int)threads;
                for (int w = 0; w < workers; ++w) pool().request(&run);
                {
                    std::unique_lock<std::mutex> lock(run.m);
                    run.all_done.wait(lock, [&] { return run.finished.load() == run.threads; });
                }
                // Workers asked for after the last thread started may still look at the block: wait them out.
                while (run.pending_workers() > 0) std::this_thread::yield();
                std::lock_guard<std::mutex> lock(g_error_mutex);
                if (!g_error.empty())
                {
                    error = "emulated kernel " + kernel.name + ", block (" + std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) +
                            "): " + g_error;
                    return false;
                }
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
