// SPDX-License-Identifier: MIT
// weft/detail/probes.hpp: USDT probes (statically defined tracepoints, provider "weft"),
// so that bpftrace, perf or SystemTap can attach to a running weft program without a
// rebuild (docs/diagnostics.md, "USDT probes"). Built when the build found <sys/sdt.h>
// (Debian: systemtap-sdt-dev) and the CMake option WEFT_USDT is on, which defines
// WEFT_USDT=1 for weft and its users; otherwise every probe is nothing.
//
// A probe is one nop in the code and a note in the binary's .note.stapsdt section; its
// arguments are computed into registers even when nothing is attached, which is why probes
// sit only on paths that block or wake a thread, never on a fast path:
//   weft:wait    (kind, object, sources, waiter)  a thread is about to park
//   weft:wake    (kind, object, index, waiter)    it was woken by a claim of source `index`
//   weft:timeout (kind, object, waiter)           its deadline passed
//   weft:cancel  (kind, object, waiter)           its stop token fired
//   weft:claim   (waiter)                         the calling thread claimed `waiter`
//   weft:put / weft:get (queue), weft:set (event): (kind, object)
//                the operations the flight recorder traces (diag_hooks.hpp, TraceOp)
//   weft:acquire (kind, object)  a Lock, RLock or Semaphore acquire that took the slow path
//                                succeeded (src/lock.cpp, diag_traced's TraceOp::acquire)
//   weft:release (kind, object)  a Lock, RLock or Semaphore release that wakes a waiter, just
//                                before it frees the lock or adds the permits
//   weft:shutdown (kind, object) a queue's shutdown()
// kind is a weft::diagnostics::SourceKind, object the primitive's address (a queue's: its
// core), waiter the address of the thread's Parker (pairs a claim with the wake it causes).
#pragma once

// Not under clang-tidy (which defines __clang_analyzer__): its checks spend many minutes on
// sys/sdt.h's inline assembly in every TU that instantiates a queue, and the probes are that
// header's macros, nothing of weft's to check.
#if defined(WEFT_USDT) && WEFT_USDT && __has_include(<sys/sdt.h>) && !defined(__clang_analyzer__)
#include <sys/sdt.h>
#define WEFT_PROBE1(name, a) DTRACE_PROBE1(weft, name, a)
#define WEFT_PROBE2(name, a, b) DTRACE_PROBE2(weft, name, a, b)
#define WEFT_PROBE3(name, a, b, c) DTRACE_PROBE3(weft, name, a, b, c)
#define WEFT_PROBE4(name, a, b, c, d) DTRACE_PROBE4(weft, name, a, b, c, d)
#define WEFT_HAVE_PROBES 1
#else
#define WEFT_PROBE1(name, a) ((void)0)
#define WEFT_PROBE2(name, a, b) ((void)0)
#define WEFT_PROBE3(name, a, b, c) ((void)0)
#define WEFT_PROBE4(name, a, b, c, d) ((void)0)
#define WEFT_HAVE_PROBES 0
#endif
