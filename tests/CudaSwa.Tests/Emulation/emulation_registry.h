// How an emulated kernel is known to the runtime: its file, its name, a function that calls it
// from cuLaunchKernel's parameter array, and its parameter layout — deduced from the kernel's own
// C++ signature, so it is exactly what the .cu file declares (offsets with natural alignment, as
// CUDA lays out kernel parameters).
#pragma once
#include <cstddef>
#include <type_traits>
#include <utility>

namespace emu
{
struct Param
{
    int offset;
    int size;
    bool is_float;
    bool is_pointer;
};

using Invoker = void (*)(void* fn, void** params);

void register_kernel(const char* file, const char* name, void* fn, Invoker invoke, const Param* params, int count);

template <class... A, std::size_t... I>
void invoke_with(void (*f)(A...), void** p, std::index_sequence<I...>)
{
    f(*static_cast<std::remove_cv_t<A>*>(p[I])...);
}

template <class... A>
struct Signature
{
    static void invoke(void* fn, void** p) { invoke_with(reinterpret_cast<void (*)(A...)>(fn), p, std::index_sequence_for<A...>{}); }

    static void layout(Param* out)
    {
        int offset = 0, i = 0;
        ((offset = (offset + (int)alignof(A) - 1) / (int)alignof(A) * (int)alignof(A),
          out[i++] = Param{offset, (int)sizeof(A), std::is_floating_point_v<A>, std::is_pointer_v<A>},
          offset += (int)sizeof(A)), ...);
    }
};

struct Registrar
{
    template <class... A>
    Registrar(const char* file, const char* name, void (*fn)(A...))
    {
        Param params[sizeof...(A) + 1] = {};
        Signature<A...>::layout(params);
        register_kernel(file, name, reinterpret_cast<void*>(fn), &Signature<A...>::invoke, params, (int)sizeof...(A));
    }
};
} // namespace emu
