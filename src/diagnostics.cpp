// SPDX-License-Identifier: MIT
// weft's diagnostics (weft/diagnostics.hpp, docs/diagnostics.md).
//
// Storage is preallocated and static, so that a signal handler can read it:
//  - kThreads thread records, each claimed by one thread (a CAS on in_use) the first time
//    diagnostics see it and freed at its exit. The owner writes its record under a seqlock
//    (version odd while writing); readers copy and retry. Held-lock slots may also be
//    cleared by another thread (a Lock released by a thread that did not acquire it): by a
//    CAS on the slot, then a version bump of 2, so readers see the change.
//  - kNames name-table entries, open addressing keyed by the primitive's address, written
//    under g_names_mutex (a std::mutex: never a weft primitive), read without it under each
//    entry's seqlock. The key is never dereferenced.
// Every field is a std::atomic (relaxed, ordered by the seqlock's version), so concurrent
// readers are not data races. Other relaxed accesses say why beside them; the usual reasons:
// a thread reading its own record (only it writes the field), a statistic or a figure, a
// hint that a later check validates (or whose staleness only loses a report or a figure).
#include "weft/diagnostics.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <pthread.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include "weft/barrier.hpp"
#include "weft/condition.hpp"
#include "weft/detail/parker.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/semaphore.hpp"

namespace weft {
namespace detail {
namespace {

using diagnostics::Clock;

constexpr std::size_t kThreads = 512;
constexpr std::size_t kTargets = 8;  // sources of one wait recorded (a select may have more)
constexpr std::size_t kHeld = 16;    // locks held by one thread recorded
constexpr std::size_t kThreadName = 32;
constexpr std::size_t kNames = 8192;  // a power of two
constexpr std::size_t kName = 48;
constexpr std::size_t kGroups = 64;
constexpr std::uintptr_t kTombstone = 1;
constexpr std::size_t kTrace = 256;  // events kept per thread (the flight recorder)

// One event of the flight recorder. seq (index + 1) is stored last (release): a reader that
// sees the index it expects sees the event; one being overwritten is skipped.
// op: a TraceOp (put, get, set, a Semaphore acquire, shutdown), its code in the flow field.
// notify: `as` is 0, or a TraceOp + 1 that names the claim (diag_notify_as).
enum class Ev : std::uint8_t { wait = 1, wake, timeout, cancel, notify, acquire, release, op };
struct TraceEvent {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::int64_t> ts_ns{0};
  std::atomic<std::uint64_t> word{0};  // type | kind << 8 | as << 16 | flow << 32
  std::atomic<std::uintptr_t> object{0};
};

// ---- seqlock helpers ----------------------------------------------------------------------
// The writer: begin() makes the version odd, then a release fence: a reader whose relaxed
// loads see any field store that follows synchronizes (fence to fence) with it, so its
// second version load sees the odd value and it retries. end() makes the version even
// (release: publishes the fields). The reader: read_begin() (acquire), relaxed field loads,
// read_valid() (an acquire fence, then the version again).

void seq_begin(std::atomic<std::uint64_t>& v) noexcept {
  // relaxed: the fence below orders it before the field stores.
  v.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}
void seq_end(std::atomic<std::uint64_t>& v) noexcept {
  v.fetch_add(1, std::memory_order_release);
}
bool seq_valid(const std::atomic<std::uint64_t>& v, std::uint64_t before) noexcept {
  std::atomic_thread_fence(std::memory_order_acquire);
  return (before & 1) == 0 && v.load(std::memory_order_relaxed) == before;
}

// relaxed: the characters are fields of a seqlocked record or entry (its version orders them).
template <std::size_t N>
void store_str(std::array<std::atomic<char>, N>& dst, std::string_view s) noexcept {
  const std::size_t n = std::min(s.size(), N - 1);
  for (std::size_t i = 0; i < n; ++i) dst[i].store(s[i], std::memory_order_relaxed);
  dst[n].store('\0', std::memory_order_relaxed);
}
template <std::size_t N>
void load_str(const std::array<std::atomic<char>, N>& src, char (&out)[N]) noexcept {
  for (std::size_t i = 0; i < N; ++i) out[i] = src[i].load(std::memory_order_relaxed);
  out[N - 1] = '\0';
}

// ---- thread records -------------------------------------------------------------------------

struct alignas(64) ThreadRec {
  std::atomic<std::uint32_t> in_use{0};
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint64_t> tid{0};
  std::array<std::atomic<char>, kThreadName> name{};
  std::atomic<std::uint32_t> group{0};
  std::atomic<std::uint32_t> waiting{0};
  std::atomic<std::uint32_t> n_targets{0};
  std::array<std::atomic<std::uintptr_t>, kTargets> target{};
  std::array<std::atomic<std::uint8_t>, kTargets> target_kind{};
  std::atomic<std::int64_t> since_ns{0};
  std::atomic<std::int64_t> deadline_ns{0};
  std::atomic<std::uint32_t> cancellable{0};
  std::atomic<std::uint64_t> wait_seq{0};
  std::atomic<std::uint64_t> checked_seq{0};   // the last wait the detector is done with
  std::atomic<std::uint64_t> reported_seq{0};  // the last wait a deadlock report included
  std::atomic<const Waiter*> parker{nullptr};
  std::array<std::atomic<std::uintptr_t>, kHeld> held{};
  std::array<std::atomic<std::uint8_t>, kHeld> held_kind{};
  // Tracing: the ring (written by the owner only), and the flow of the claim that will
  // end the current wait (written by the notifier, taken by the owner when it wakes).
  std::array<TraceEvent, kTrace> trace{};
  std::atomic<std::uint64_t> trace_head{0};
  std::atomic<std::uint32_t> pending_flow{0};
  // Who claimed the current wait (who_of(), 0: nobody yet): written by the notifier, taken
  // by the owner when it wakes (contention figures, producers).
  std::atomic<std::uint64_t> claimed_by{0};
};

ThreadRec g_threads[kThreads];
std::atomic<std::uint32_t> g_next_flow{1};

// relaxed: a thread that misses a change of the flag records one event more or less.
bool tracing() noexcept {
  return (g_diag_flags.load(std::memory_order_relaxed) & kDiagTrace) != 0;
}

// Appends an event to the owner's ring.
void trace(ThreadRec* r, Ev type, SourceKind kind, const void* object, std::uint32_t flow,
           std::uint8_t as = 0) noexcept {
  // relaxed: only the owner writes its head (a new owner after in_use's acquire CAS).
  const std::uint64_t i = r->trace_head.load(std::memory_order_relaxed);
  TraceEvent& e = r->trace[i % kTrace];
  e.seq.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // the 0 is seen before the new fields
  e.ts_ns.store(Deadline::now().ns(), std::memory_order_relaxed);
  e.word.store(static_cast<std::uint64_t>(type) | (static_cast<std::uint64_t>(kind) << 8) |
                   (static_cast<std::uint64_t>(as) << 16) |
                   (static_cast<std::uint64_t>(flow) << 32),
               std::memory_order_relaxed);
  e.object.store(reinterpret_cast<std::uintptr_t>(object), std::memory_order_relaxed);
  e.seq.store(i + 1, std::memory_order_release);
  r->trace_head.store(i + 1, std::memory_order_release);
}
// One event copied out of a ring.
struct TraceSnap {
  Ev type;
  SourceKind kind;
  std::uint32_t flow;
  std::int64_t ts;
  std::uintptr_t obj;
  std::uint8_t as;  // a notify's name: 0 (by the wait it ended) or a TraceOp + 1
};

// Copies the events of the ring of `r` that are intact (not being overwritten).
std::vector<TraceSnap> ring_of(ThreadRec& r) {
  std::vector<TraceSnap> out;
  const std::uint64_t head = r.trace_head.load(std::memory_order_acquire);
  const std::uint64_t from = head > kTrace ? head - kTrace : 0;
  for (std::uint64_t i = from; i < head; ++i) {
    TraceEvent& e = r.trace[i % kTrace];
    if (e.seq.load(std::memory_order_acquire) != i + 1) continue;
    const std::int64_t ts = e.ts_ns.load(std::memory_order_relaxed);
    const std::uint64_t word = e.word.load(std::memory_order_relaxed);
    const std::uintptr_t obj = e.object.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != i + 1) continue;  // overwritten meanwhile
    out.push_back(TraceSnap{static_cast<Ev>(word & 0xff),
                            static_cast<SourceKind>((word >> 8) & 0xff),
                            static_cast<std::uint32_t>(word >> 32), ts, obj,
                            static_cast<std::uint8_t>((word >> 16) & 0xff)});
  }
  return out;
}

// The rings of the threads that exited while tracing was on (the last kRetired of them),
// so that a trace written after the workers were joined still shows them. Filled at a
// thread's exit, under g_retired_mutex (a std::mutex: never a weft primitive); emptied by
// start_tracing().
constexpr std::size_t kRetired = 64;
struct RetiredTrack {
  std::uint64_t tid = 0;
  std::string name;
  std::vector<TraceSnap> events;
  // The names of the primitives in its events, as they were at its exit (a trace written
  // later, at the program's exit say, would find them destroyed).
  std::unordered_map<std::uintptr_t, std::string> names;
};
std::mutex g_retired_mutex;
std::deque<RetiredTrack> g_retired;

// One past the highest slot ever claimed: scans stop there. Only grows. A reader that misses
// a newer slot misses a thread that started after it began to look.
std::atomic<std::size_t> g_slots{0};
std::size_t slots() noexcept {
  // acquire: pairs with my_rec()'s release, so the claimed record's in_use is seen.
  return g_slots.load(std::memory_order_acquire);
}

// A consistent copy of one record.
struct RecSnap {
  std::size_t slot = 0;
  std::uint64_t version = 0;
  std::uint64_t tid = 0;
  char name[kThreadName] = {};
  std::uint32_t group = 0;
  bool waiting = false;
  std::uint32_t n_targets = 0;
  std::uintptr_t target[kTargets] = {};
  SourceKind target_kind[kTargets] = {};
  std::int64_t since_ns = 0;
  std::int64_t deadline_ns = 0;
  bool cancellable = false;
  std::uint64_t wait_seq = 0;
  bool checked = false;
  const Waiter* parker = nullptr;
  std::uintptr_t held[kHeld] = {};
  SourceKind held_kind[kHeld] = {};
};

// Copies record `slot`; false if it is free or kept changing.
bool read_rec(std::size_t slot, RecSnap& out) noexcept {
  const ThreadRec& r = g_threads[slot];
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (r.in_use.load(std::memory_order_acquire) == 0) return false;
    const std::uint64_t v = r.version.load(std::memory_order_acquire);
    if (v & 1) continue;
    out.slot = slot;
    out.version = v;
    out.tid = r.tid.load(std::memory_order_relaxed);
    load_str(r.name, out.name);
    out.group = r.group.load(std::memory_order_relaxed);
    out.waiting = r.waiting.load(std::memory_order_relaxed) != 0;
    out.n_targets = r.n_targets.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < kTargets; ++i) {
      out.target[i] = r.target[i].load(std::memory_order_relaxed);
      out.target_kind[i] = SourceKind(r.target_kind[i].load(std::memory_order_relaxed));
    }
    out.since_ns = r.since_ns.load(std::memory_order_relaxed);
    out.deadline_ns = r.deadline_ns.load(std::memory_order_relaxed);
    out.cancellable = r.cancellable.load(std::memory_order_relaxed) != 0;
    out.wait_seq = r.wait_seq.load(std::memory_order_relaxed);
    out.parker = r.parker.load(std::memory_order_relaxed);
    // acquire: pairs with the release in on_wait, after the verdict's report.
    out.checked = r.checked_seq.load(std::memory_order_acquire) == out.wait_seq;
    for (std::size_t i = 0; i < kHeld; ++i) {
      out.held[i] = r.held[i].load(std::memory_order_relaxed);
      out.held_kind[i] = SourceKind(r.held_kind[i].load(std::memory_order_relaxed));
    }
    if (seq_valid(r.version, v)) return true;
  }
  return false;
}

std::uint64_t current_tid() noexcept {
  return static_cast<std::uint64_t>(::syscall(SYS_gettid));
}

thread_local ThreadRec* t_rec = nullptr;
// While the thread is in a DiagNotifiesAs scope (diag_hooks.hpp): what its claims are
// (a TraceOp + 1), else 0.
thread_local std::uint8_t t_notify_as = 0;

void free_rec(ThreadRec* r) noexcept {
  seq_begin(r->version);
  r->waiting.store(0, std::memory_order_relaxed);
  r->group.store(0, std::memory_order_relaxed);
  r->parker.store(nullptr, std::memory_order_relaxed);  // freed with the thread
  for (auto& h : r->held) h.store(0, std::memory_order_relaxed);
  seq_end(r->version);
  // The next owner starts an empty ring (a reader checks each event's seq against the head
  // it read, so one still reading the old events skips those overwritten). relaxed: the
  // release below publishes it to the next owner, whose claim of in_use is an acquire.
  r->trace_head.store(0, std::memory_order_relaxed);
  // release: the next owner (acquire CAS) and readers (acquire loads) see the record freed.
  r->in_use.store(0, std::memory_order_release);
}

// At a thread's exit while tracing: keeps a copy of its ring for trace_json() (below).
void retire_trace(ThreadRec* r) noexcept;

// Frees the thread's record at its exit.
struct RecOwner {
  RecOwner() = default;
  RecOwner(const RecOwner&) = delete;
  RecOwner& operator=(const RecOwner&) = delete;
  ~RecOwner() {
    if (t_rec != nullptr) {
      if (tracing()) retire_trace(t_rec);
      free_rec(t_rec);
    }
    t_rec = nullptr;
  }
};

// The calling thread's record, claimed on first use; null if all are taken.
ThreadRec* my_rec() noexcept {
  if (t_rec != nullptr) return t_rec;
  for (auto& r : g_threads) {
    std::uint32_t expected = 0;
    // The relaxed load only keeps a full scan read-only; acq_rel: the claim sees the previous
    // owner's last writes (acquire) and readers that see in_use see the claim (release).
    if (r.in_use.load(std::memory_order_relaxed) == 0 &&
        r.in_use.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      seq_begin(r.version);
      r.tid.store(current_tid(), std::memory_order_relaxed);
      store_str(r.name, "");
      r.group.store(0, std::memory_order_relaxed);
      r.waiting.store(0, std::memory_order_relaxed);
      // The previous owner's Parker may since have been freed and reallocated to another
      // thread: a claim of that thread must not find this record.
      r.parker.store(nullptr, std::memory_order_relaxed);
      r.claimed_by.store(0, std::memory_order_relaxed);
      for (auto& h : r.held) h.store(0, std::memory_order_relaxed);
      seq_end(r.version);
      const auto slot = static_cast<std::size_t>(&r - g_threads);
      std::size_t seen = g_slots.load(std::memory_order_relaxed);  // the CAS re-checks it
      // release: a scan that reads the new bound sees the record's in_use.
      while (seen <= slot &&
             !g_slots.compare_exchange_weak(seen, slot + 1, std::memory_order_release)) {
      }
      t_rec = &r;
      // The first use in a thread registers the exit hook (this may allocate, once).
      static thread_local RecOwner owner;
      (void)owner;
      return t_rec;
    }
  }
  return nullptr;
}

// ---- names --------------------------------------------------------------------------------

struct NameEntry {
  std::atomic<std::uintptr_t> key{0};  // 0 empty, kTombstone removed, else the address
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint8_t> kind{0};
  std::array<std::atomic<char>, kName> name{};
  std::atomic<const char*> file{nullptr};
  std::atomic<std::uint32_t> line{0};
};

NameEntry g_names[kNames];
std::mutex g_names_mutex;  // serializes writers; readers never take it

std::size_t hash_of(std::uintptr_t key) noexcept {
  return static_cast<std::size_t>((key >> 3) * 0x9E3779B97F4A7C15ULL) & (kNames - 1);
}

// The entry for `key`, or null. Lock-free.
NameEntry* find_name(std::uintptr_t key) noexcept {
  std::size_t i = hash_of(key);
  for (std::size_t n = 0; n < kNames; ++n, i = (i + 1) & (kNames - 1)) {
    const std::uintptr_t k = g_names[i].key.load(std::memory_order_acquire);
    if (k == key) return &g_names[i];
    if (k == 0) return nullptr;
  }
  return nullptr;
}

struct NameSnap {
  SourceKind kind = SourceKind::other;
  char name[kName] = {};
  const char* file = nullptr;
  std::uint32_t line = 0;
};

bool read_name(std::uintptr_t key, NameSnap& out) noexcept {
  NameEntry* e = find_name(key);
  if (e == nullptr) return false;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint64_t v = e->version.load(std::memory_order_acquire);
    if (v & 1) continue;
    const bool match = e->key.load(std::memory_order_relaxed) == key;
    out.kind = SourceKind(e->kind.load(std::memory_order_relaxed));
    load_str(e->name, out.name);
    out.file = e->file.load(std::memory_order_relaxed);
    out.line = e->line.load(std::memory_order_relaxed);
    if (seq_valid(e->version, v)) return match;
  }
  return false;
}

// A copy of the ring of an exiting thread, with the names of what it waited on.
void retire_trace(ThreadRec* r) noexcept {
  try {
    RetiredTrack t;
    t.tid = r->tid.load(std::memory_order_relaxed);  // relaxed: the calling thread's own record
    char name[kThreadName];
    load_str(r->name, name);  // only the owner (this thread) writes it
    t.name = name;
    t.events = ring_of(*r);
    if (t.events.empty()) return;
    for (const TraceSnap& e : t.events) {
      NameSnap ns;
      if (e.type != Ev::notify && read_name(e.obj, ns) && ns.name[0] != '\0')
        t.names.emplace(e.obj, ns.name);
    }
    std::lock_guard<std::mutex> g(g_retired_mutex);
    if (g_retired.size() == kRetired) g_retired.pop_front();
    g_retired.push_back(std::move(t));
  } catch (...) {
    // Out of memory: the thread's events are lost, nothing else.
  }
}

// ---- groups -------------------------------------------------------------------------------

struct GroupSlot {
  std::atomic<std::uint32_t> id{0};  // 0: free
  std::atomic<std::uint32_t> size{0};
  std::array<std::atomic<char>, kThreadName> name{};
};
GroupSlot g_groups[kGroups];
std::atomic<std::uint32_t> g_next_group{1};

GroupSlot* find_group(std::uint32_t id) noexcept {
  if (id == 0) return nullptr;
  // acquire: pairs with the Group constructor's release of the id: size and name are seen.
  for (auto& g : g_groups)
    if (g.id.load(std::memory_order_acquire) == id) return &g;
  return nullptr;
}

// ---- options, hooks -----------------------------------------------------------------------

std::atomic<const diagnostics::Options*> g_options{nullptr};  // kept by enable()
std::atomic<std::uint64_t> g_checks{0};  // a count, release/acquire: see deadlock_checks()
// Serializes detection: when the threads of one cycle check at once, the first reports it
// (marking every member's wait), the others see the marks and stay silent. A std::mutex,
// held only by threads about to sleep, never while parked.
std::mutex g_detect_mutex;
thread_local std::string t_deadlock_text;

bool on_wait(const WaitTarget* t, std::size_t n, Deadline deadline, bool cancellable) noexcept;
void on_wake(const WaitTarget* t, std::size_t n, RoundEnd end, std::uint32_t index) noexcept;
constexpr WaitHooks kHooks{on_wait, on_wake};
void write_contention(int fd) noexcept;

// ---- text, without allocating ---------------------------------------------------------------

// NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init): buf_ is written before it is read
class Buf {
 public:
  void put(std::string_view s) noexcept {
    for (char c : s) {
      if (len_ + 1 >= sizeof(buf_)) return;
      buf_[len_++] = c;
    }
  }
  void put_u(std::uint64_t v) noexcept {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = char('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) put(std::string_view(&tmp[--n], 1));
  }
  void put_hex(std::uintptr_t v) noexcept {
    put("0x");
    char tmp[20];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n > 0) put(std::string_view(&tmp[--n], 1));
  }
  // Milliseconds as "12.345s".
  void put_secs(std::int64_t ns) noexcept {
    if (ns < 0) {
      put("-");
      ns = -ns;
    }
    put_u(static_cast<std::uint64_t>(ns / 1'000'000'000));
    put(".");
    const auto ms = static_cast<std::uint64_t>((ns / 1'000'000) % 1000);
    if (ms < 100) put("0");
    if (ms < 10) put("0");
    put_u(ms);
    put("s");
  }
  void write_to(int fd) noexcept {
    std::size_t off = 0;
    while (off < len_) {
      const ssize_t w = ::write(fd, buf_ + off, len_ - off);
      if (w <= 0) {
        if (w < 0 && errno == EINTR) continue;
        break;
      }
      off += static_cast<std::size_t>(w);
    }
    len_ = 0;
  }
  std::string_view view() const noexcept { return {buf_, len_}; }

 private:
  char buf_[2048];  // NOLINT(cppcoreguidelines-pro-type-member-init): written before read
  std::size_t len_ = 0;
};

std::string_view kind_name(SourceKind k) noexcept {
  switch (k) {
    case SourceKind::event:
      return "Event";
    case SourceKind::lock:
      return "Lock";
    case SourceKind::rlock:
      return "RLock";
    case SourceKind::semaphore:
      return "Semaphore";
    case SourceKind::condition:
      return "Condition";
    case SourceKind::queue_get:
      return "Queue(get)";
    case SourceKind::queue_put:
      return "Queue(put)";
    case SourceKind::queue_join:
      return "Queue(join)";
    case SourceKind::barrier:
      return "Barrier";
    case SourceKind::other:
      break;
  }
  return "source";
}

std::string_view basename_of(const char* path) noexcept {
  std::string_view p(path);
  const std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// The thread (record slot) that holds lock `key`, per the records; kThreads if unknown. A
// hint, read outside the records' seqlocks (relaxed): reports print it, and the deadlock
// detector uses it only to skip its full check, which reads a consistent snapshot.
std::size_t holder_slot(std::uintptr_t key) noexcept {
  for (std::size_t s = 0, end = slots(); s < end; ++s) {
    const ThreadRec& r = g_threads[s];
    if (r.in_use.load(std::memory_order_acquire) == 0) continue;  // pairs with the claim
    for (const auto& h : r.held)
      if (h.load(std::memory_order_relaxed) == key) return s;
  }
  return kThreads;
}

// "thread "name" (tid N) group "g"". Async-signal-safe.
void put_thread_label(Buf& b, const RecSnap& r) noexcept {
  b.put("thread ");
  if (r.name[0] != '\0') {
    b.put("\"");
    b.put(r.name);
    b.put("\" ");
  }
  b.put("(tid ");
  b.put_u(r.tid);
  b.put(")");
  if (GroupSlot* g = find_group(r.group)) {
    char gname[kThreadName];
    load_str(g->name, gname);
    b.put(" group \"");
    b.put(gname);
    b.put("\"");
  }
}

void put_primitive(Buf& b, SourceKind kind, std::uintptr_t key) noexcept {
  NameSnap ns;
  const bool known = read_name(key, ns);
  b.put(kind_name(kind));
  if (known && ns.name[0] != '\0') {
    b.put(" \"");
    b.put(ns.name);
    b.put("\"");
  }
  b.put(" @");
  b.put_hex(key);
  if (known && ns.file != nullptr) {
    b.put(" (");
    b.put(basename_of(ns.file));
    b.put(":");
    b.put_u(ns.line);
    b.put(")");
  }
  if (kind == SourceKind::lock || kind == SourceKind::rlock) {
    const std::size_t h = holder_slot(key);
    if (h < kThreads) {
      b.put(" held by tid ");
      // relaxed: a tid changes only when the record changes hands (a hint, as above).
      b.put_u(g_threads[h].tid.load(std::memory_order_relaxed));
    } else {
      b.put(" holder unknown");
    }
  }
}

// One thread's lines. Async-signal-safe.
void write_thread(int fd, const RecSnap& r, std::int64_t now_ns) noexcept {
  Buf b;
  put_thread_label(b, r);
  if (r.waiting) {
    b.put(" waiting for ");
    b.put_secs(now_ns - r.since_ns);
    if (r.deadline_ns == Deadline::never().ns()) {
      b.put(", no deadline");
    } else {
      b.put(", deadline in ");
      b.put_secs(r.deadline_ns - now_ns);
    }
    if (r.cancellable) b.put(", cancellable");
    b.put(r.n_targets > 1 ? ", on any of:\n" : ", on:\n");
    b.write_to(fd);
    for (std::uint32_t i = 0; i < std::min<std::uint32_t>(r.n_targets, kTargets); ++i) {
      b.put("    ");
      put_primitive(b, r.target_kind[i], r.target[i]);
      b.put("\n");
      b.write_to(fd);
    }
    if (r.n_targets > kTargets) {
      b.put("    (and ");
      b.put_u(r.n_targets - kTargets);
      b.put(" more)\n");
    }
  } else {
    b.put(" running\n");
  }
  for (std::size_t i = 0; i < kHeld; ++i) {
    if (r.held[i] == 0) continue;
    b.put("    holds ");
    put_primitive(b, r.held_kind[i], r.held[i]);
    b.put("\n");
    b.write_to(fd);
  }
  b.write_to(fd);
}

void write_all(int fd) noexcept {
  const std::int64_t now = Deadline::now().ns();
  Buf b;
  b.put("weft: threads (pid ");
  b.put_u(static_cast<std::uint64_t>(::getpid()));
  b.put(")\n");
  b.write_to(fd);
  RecSnap r;
  for (std::size_t s = 0, end = slots(); s < end; ++s)
    if (read_rec(s, r)) write_thread(fd, r, now);
  write_contention(fd);
}

// ---- structured reports -------------------------------------------------------------------

diagnostics::Clock::time_point to_time(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

diagnostics::Primitive primitive_of(SourceKind kind, std::uintptr_t key) {
  diagnostics::Primitive p;
  p.kind = kind;
  p.address = reinterpret_cast<const void*>(key);  // NOLINT(performance-no-int-to-ptr)
  NameSnap ns;
  if (read_name(key, ns)) {
    p.name = ns.name;
    if (ns.file != nullptr)
      p.site = std::string(basename_of(ns.file)) + ":" + std::to_string(ns.line);
  }
  if (kind == SourceKind::lock || kind == SourceKind::rlock) {
    const std::size_t h = holder_slot(key);
    if (h < kThreads) p.holder = g_threads[h].tid.load(std::memory_order_relaxed);  // as above
  }
  return p;
}

diagnostics::ThreadState state_of(const RecSnap& r) {
  diagnostics::ThreadState t;
  t.id = r.tid;
  t.name = r.name;
  if (GroupSlot* g = find_group(r.group)) {
    char gname[kThreadName];
    load_str(g->name, gname);
    t.group = gname;
  }
  t.waiting = r.waiting;
  if (r.waiting) {
    for (std::uint32_t i = 0; i < std::min<std::uint32_t>(r.n_targets, kTargets); ++i)
      t.waits_on.push_back(primitive_of(r.target_kind[i], r.target[i]));
    t.since = to_time(r.since_ns);
    if (r.deadline_ns != Deadline::never().ns()) t.deadline = to_time(r.deadline_ns);
    t.cancellable = r.cancellable;
    t.checked = r.checked;
  }
  for (std::size_t i = 0; i < kHeld; ++i)
    if (r.held[i] != 0) t.holds.push_back(primitive_of(r.held_kind[i], r.held[i]));
  return t;
}

// ---- deadlock detection -------------------------------------------------------------------

// A snapshot of every record valid at one instant: two collects that agree on every version.
bool consistent_snapshot(std::vector<RecSnap>& out) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    out.clear();
    RecSnap r;
    const std::size_t end = slots();
    for (std::size_t s = 0; s < end; ++s)
      if (read_rec(s, r)) out.push_back(r);
    bool same = end == slots();
    std::size_t k = 0;
    for (std::size_t s = 0; s < end && same; ++s) {
      const bool used = g_threads[s].in_use.load(std::memory_order_seq_cst) != 0;
      const bool had = k < out.size() && out[k].slot == s;
      if (used != had) same = false;
      if (had) {
        if (g_threads[s].version.load(std::memory_order_seq_cst) != out[k].version) same = false;
        ++k;
      }
    }
    if (same) return true;
  }
  return false;
}

bool versions_unchanged(const std::vector<RecSnap>& recs) noexcept {
  for (const RecSnap& r : recs)
    if (g_threads[r.slot].version.load(std::memory_order_seq_cst) != r.version) return false;
  return true;
}

bool is_lock(SourceKind k) noexcept {
  return k == SourceKind::lock || k == SourceKind::rlock;
}

// Whether the calling thread (record `self`), about to sleep with no deadline and no stop
// token, closes a certain deadlock; `members` receives the deadlocked threads.
bool certain_deadlock(const ThreadRec* self, std::vector<RecSnap>& members) {
  std::vector<RecSnap> recs;
  if (!consistent_snapshot(recs)) return false;
  const std::size_t n = recs.size();
  std::size_t me = n;
  std::vector<char> stuck(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const RecSnap& r = recs[i];
    if (&g_threads[r.slot] == self) me = i;
    // A thread that can only be woken by another: waiting, no deadline, no stop token,
    // every source recorded, and no wake-up decided for it yet.
    stuck[i] =
        static_cast<char>(r.waiting && r.deadline_ns == Deadline::never().ns() && !r.cancellable &&
                          r.n_targets <= kTargets && r.parker != nullptr && !r.parker->decided());
  }
  // The decisions read above belong to the recorded waits only if no record changed since.
  if (me == n || !stuck[me] || !versions_unchanged(recs)) return false;

  auto holder = [&](std::uintptr_t key) -> std::size_t {
    for (std::size_t j = 0; j < n; ++j)
      for (std::uintptr_t h : recs[j].held)
        if (h == key) return j;
    return n;
  };
  auto group_stuck = [&](std::uint32_t id) {
    const GroupSlot* g = find_group(id);
    if (g == nullptr) return false;
    std::size_t count = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (recs[j].group != id) continue;
      if (!stuck[j]) return false;
      ++count;
    }
    return count == g->size.load(std::memory_order_relaxed);  // after find_group's acquire
  };
  // The greatest set of stuck threads closed under "can only be woken by a member": drop
  // every thread with a source that someone outside the set may still make ready.
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (!stuck[i]) continue;
      const RecSnap& r = recs[i];
      const bool in_dead_group = r.group != 0 && group_stuck(r.group);
      for (std::uint32_t t = 0; t < r.n_targets; ++t) {
        bool dead = in_dead_group;
        if (!dead && is_lock(r.target_kind[t])) {
          const std::size_t h = holder(r.target[t]);
          dead = h < n && stuck[h];
        }
        if (!dead) {
          stuck[i] = 0;
          changed = true;
          break;
        }
      }
    }
  }
  if (!stuck[me]) return false;
  // The threads of the deadlock: those the closing thread waits for, transitively.
  std::vector<char> in(n, 0);
  std::vector<std::size_t> todo{me};
  in[me] = 1;
  while (!todo.empty()) {
    const std::size_t i = todo.back();
    todo.pop_back();
    members.push_back(recs[i]);
    const RecSnap& r = recs[i];
    auto visit = [&](std::size_t j) {
      if (j < n && stuck[j] && !in[j]) {
        in[j] = 1;
        todo.push_back(j);
      }
    };
    for (std::uint32_t t = 0; t < r.n_targets; ++t)
      if (is_lock(r.target_kind[t])) visit(holder(r.target[t]));
    if (r.group != 0)
      for (std::size_t j = 0; j < n; ++j)
        if (recs[j].group == r.group) visit(j);
  }
  return true;
}

std::string deadlock_text(const std::vector<RecSnap>& members) {
  std::string text = "weft: deadlock (certain): " + std::to_string(members.size()) +
                     (members.size() == 1 ? " thread" : " threads") +
                     " can only be woken by each other\n";
  const std::int64_t now = Deadline::now().ns();
  for (const RecSnap& r : members) {
    Buf b;
    put_thread_label(b, r);
    b.put(" waits ");
    b.put_secs(now - r.since_ns);
    b.put(" on:\n");
    text += b.view();
    for (std::uint32_t i = 0; i < std::min<std::uint32_t>(r.n_targets, kTargets); ++i) {
      Buf p;
      p.put("    ");
      put_primitive(p, r.target_kind[i], r.target[i]);
      p.put("\n");
      text += p.view();
    }
    for (std::size_t i = 0; i < kHeld; ++i) {
      if (r.held[i] == 0) continue;
      Buf p;
      p.put("    holds ");
      put_primitive(p, r.held_kind[i], r.held[i]);
      p.put("\n");
      text += p.view();
    }
  }
  return text;
}

// A cheap necessary condition for a certain verdict, read without a snapshot: each source
// of the wait is a Lock/RLock whose holder is recorded waiting with no deadline and no stop
// token, or this thread is in a group. Keeps the full check off ordinary waits.
bool may_close_deadlock(const ThreadRec* self, const WaitTarget* t, std::size_t n) noexcept {
  // seq_cst fence: between this thread's published wait and its reads of the others'. Two
  // threads closing one cycle at once each publish, fence, then read: at least one of them
  // sees the other waiting (the fences are totally ordered), so a cycle is never missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (self->group.load(std::memory_order_relaxed) != 0) return true;
  if (n > kTargets) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_lock(t[i].kind)) return false;
    const std::size_t h = holder_slot(reinterpret_cast<std::uintptr_t>(t[i].object));
    if (h == kThreads) return false;
    const ThreadRec& hr = g_threads[h];
    if (hr.waiting.load(std::memory_order_relaxed) == 0 ||
        hr.cancellable.load(std::memory_order_relaxed) != 0 ||
        hr.deadline_ns.load(std::memory_order_relaxed) != Deadline::never().ns()) {
      return false;
    }
  }
  return true;
}

// ---- who ends waits: contention figures and the producers of ownerless sources ------------
// Both come from the claim protocol: the notifier that claims a waiter (Waiter::try_claim,
// diag_claimed below) stores its identity in the waiter's record (claimed_by); the waiter,
// when it wakes, charges the length of its wait to that thread and, for a source without
// an owner, adds it to the source's producers. Nothing is recorded on the notifiers' fast
// paths: a set/put/release that wakes nobody leaves no trace (and needs none: it ended no
// wait).

// A thread as "tid << 16 | slot + 1" (tids fit in 48 bits): a record slot alone could be
// reused by another thread.
// relaxed: `r` is the calling thread's own record.
std::uint64_t who_of(const ThreadRec* r) noexcept {
  return (r->tid.load(std::memory_order_relaxed) << 16) |
         static_cast<std::uint64_t>(r - g_threads + 1);
}
std::size_t slot_of_who(std::uint64_t who) noexcept {
  return static_cast<std::size_t>((who & 0xffff) - 1);
}
std::uint64_t tid_of_who(std::uint64_t who) noexcept {
  return who >> 16;
}

// Contention figures, one per name-table entry (the same index): primitives diagnostics
// know. Relaxed counters: figures, read without ordering; reset when the entry changes hands.
constexpr std::size_t kCharges = 4;  // threads charged per primitive; the rest is "uncharged"
struct Figures {
  std::atomic<std::uint64_t> waits{0};
  std::atomic<std::int64_t> waited_ns{0};
  std::atomic<std::int64_t> longest_ns{0};
  std::atomic<std::uint64_t> uncharged{0};
  std::array<std::atomic<std::uint64_t>, kCharges> charged_tid{};
  std::array<std::atomic<std::uint64_t>, kCharges> charged_waits{};
  std::array<std::atomic<std::int64_t>, kCharges> charged_ns{};
};
Figures g_figures[kNames];
// Per name-table entry: set by skip_lock_order(). relaxed: a flag the user sets before the
// lock is used; an acquisition racing with it is checked once more.
std::atomic<std::uint8_t> g_order_skip[kNames];

void reset_entry_extras(std::size_t i) noexcept {
  Figures& f = g_figures[i];
  f.waits.store(0, std::memory_order_relaxed);
  f.waited_ns.store(0, std::memory_order_relaxed);
  f.longest_ns.store(0, std::memory_order_relaxed);
  f.uncharged.store(0, std::memory_order_relaxed);
  for (std::size_t c = 0; c < kCharges; ++c) {
    f.charged_tid[c].store(0, std::memory_order_relaxed);
    f.charged_waits[c].store(0, std::memory_order_relaxed);
    f.charged_ns[c].store(0, std::memory_order_relaxed);
  }
  g_order_skip[i].store(0, std::memory_order_relaxed);
}

// A wait on `target` of `ns` ended, by a claim of thread `who` (0: a timeout, a stop token).
// A primitive destroyed meanwhile may have given its entry to another: then the figure goes
// to the newcomer, at worst (the entry, never the primitive, is touched).
void count_wait(const WaitTarget& target, std::int64_t ns, std::uint64_t who) noexcept {
  NameEntry* e = find_name(reinterpret_cast<std::uintptr_t>(target.object));
  if (e == nullptr) return;
  Figures& f = g_figures[e - g_names];
  f.waits.fetch_add(1, std::memory_order_relaxed);
  f.waited_ns.fetch_add(ns, std::memory_order_relaxed);
  std::int64_t longest = f.longest_ns.load(std::memory_order_relaxed);
  while (ns > longest &&
         !f.longest_ns.compare_exchange_weak(longest, ns, std::memory_order_relaxed)) {
  }
  const std::uint64_t tid = tid_of_who(who);
  for (std::size_t c = 0; tid != 0 && c < kCharges; ++c) {
    std::uint64_t have = f.charged_tid[c].load(std::memory_order_relaxed);
    if (have == 0 && f.charged_tid[c].compare_exchange_strong(have, tid, std::memory_order_relaxed))
      have = tid;
    if (have != tid) continue;
    f.charged_waits[c].fetch_add(1, std::memory_order_relaxed);
    f.charged_ns[c].fetch_add(ns, std::memory_order_relaxed);
    return;
  }
  f.uncharged.fetch_add(1, std::memory_order_relaxed);
}

// The threads that ever ended a wait on a source without an owner (by a claim), per
// (object, kind): a fixed open-addressing table, written under g_producers_mutex, read
// without it. An entry is dropped when its primitive is destroyed (diag_forget). The key is
// published with release and found with acquire (the entry's fields were cleared first);
// the other fields are relaxed: they feed only "likely" reports, never fatal, and a reader
// racing with a writer misses or keeps a producer for one check.
constexpr std::size_t kSources = 1024;  // a power of two
constexpr std::size_t kProducers = 4;   // more, and the source is never judged
struct ProducerEntry {
  std::atomic<std::uintptr_t> key{0};  // 0 empty, kTombstone removed, else the address
  std::atomic<std::uint8_t> kind{0};
  std::atomic<std::uint32_t> overflow{0};
  std::atomic<std::uint32_t> reported{0};  // a likely report was made since the last new claim
  std::array<std::atomic<std::uint64_t>, kProducers> who{};
};
ProducerEntry g_producers[kSources];
std::mutex g_producers_mutex;

ProducerEntry* find_producers(std::uintptr_t key, SourceKind kind) noexcept {
  std::size_t i = hash_of(key) & (kSources - 1);
  for (std::size_t n = 0; n < kSources; ++n, i = (i + 1) & (kSources - 1)) {
    const std::uintptr_t k = g_producers[i].key.load(std::memory_order_acquire);
    if (k == key && g_producers[i].kind.load(std::memory_order_relaxed) == std::uint8_t(kind))
      return &g_producers[i];
    if (k == 0) return nullptr;
  }
  return nullptr;
}

bool ownerless(SourceKind k) noexcept {
  return k != SourceKind::lock && k != SourceKind::rlock;
}

void add_producer(const WaitTarget& target, std::uint64_t who) noexcept {
  // An operation that does not name its source (SourceKind::other) is keyed by its own
  // address, on the waiter's stack: no identity to judge a source by, and no destructor would
  // ever drop the entry.
  if (!ownerless(target.kind) || target.kind == SourceKind::other) return;
  const auto key = reinterpret_cast<std::uintptr_t>(target.object);
  if (ProducerEntry* e = find_producers(key, target.kind)) {
    e->reported.store(0, std::memory_order_relaxed);
    for (const auto& w : e->who)
      if (w.load(std::memory_order_relaxed) == who) return;  // the common case: known
  }
  // The destructor must come to drop the entry (diag_destroyed).
  g_diag_names_used.store(true, std::memory_order_relaxed);  // as in diag_register
  std::lock_guard<std::mutex> g(g_producers_mutex);
  ProducerEntry* e = find_producers(key, target.kind);
  if (e == nullptr) {
    std::size_t i = hash_of(key) & (kSources - 1);
    for (std::size_t n = 0; n < kSources; ++n, i = (i + 1) & (kSources - 1)) {
      const std::uintptr_t k = g_producers[i].key.load(std::memory_order_relaxed);
      if (k == 0 || k == kTombstone) {
        e = &g_producers[i];
        break;
      }
    }
    if (e == nullptr) return;  // full: the source is never judged
    e->overflow.store(0, std::memory_order_relaxed);
    e->reported.store(0, std::memory_order_relaxed);
    for (auto& w : e->who) w.store(0, std::memory_order_relaxed);
    e->kind.store(static_cast<std::uint8_t>(target.kind), std::memory_order_relaxed);
    // release: a reader that finds the key sees the cleared fields.
    e->key.store(key, std::memory_order_release);
  }
  for (auto& w : e->who) {
    const std::uint64_t have = w.load(std::memory_order_relaxed);
    if (have == who) return;
    if (have == 0) {
      w.store(who, std::memory_order_relaxed);
      return;
    }
  }
  e->overflow.store(1, std::memory_order_relaxed);
}

void forget_producers(std::uintptr_t key) noexcept {
  bool any = false;
  for (std::uint8_t k = 0; k <= static_cast<std::uint8_t>(SourceKind::other); ++k)
    any = any || find_producers(key, SourceKind(k)) != nullptr;
  if (!any) return;  // the common case: no lock taken
  std::lock_guard<std::mutex> g(g_producers_mutex);
  for (std::uint8_t k = 0; k <= static_cast<std::uint8_t>(SourceKind::other); ++k) {
    if (ProducerEntry* e = find_producers(key, SourceKind(k))) {
      for (auto& w : e->who) w.store(0, std::memory_order_relaxed);
      e->key.store(kTombstone, std::memory_order_release);
    }
  }
}

// ---- likely deadlocks ------------------------------------------------------------------------

// Whether the calling thread (about to sleep with no deadline and no stop token on sources
// without an owner) waits in vain as far as anyone can tell: every thread that ever ended a
// wait on each of its sources is blocked the same way or has exited. `producers` receives
// the blocked ones. Never certain: a thread that never woke anyone may still set the source.
bool likely_deadlock(const ThreadRec* self, const WaitTarget* t, std::size_t n,
                     std::vector<RecSnap>& producers, std::vector<ProducerEntry*>& entries) {
  if (n == 0 || n > kTargets) return false;
  // Cheap first: every source has known producers, none of them visibly running (relaxed
  // reads of other records: a pre-check; the verdict comes from the snapshot below).
  for (std::size_t i = 0; i < n; ++i) {
    if (!ownerless(t[i].kind)) return false;
    ProducerEntry* e = find_producers(reinterpret_cast<std::uintptr_t>(t[i].object), t[i].kind);
    if (e == nullptr || e->overflow.load(std::memory_order_relaxed) != 0 ||
        e->reported.load(std::memory_order_relaxed) != 0 ||
        e->who[0].load(std::memory_order_relaxed) == 0) {
      return false;
    }
    for (const auto& w : e->who) {
      const std::uint64_t who = w.load(std::memory_order_relaxed);
      if (who == 0) break;
      const ThreadRec& pr = g_threads[slot_of_who(who)];
      if (pr.in_use.load(std::memory_order_relaxed) != 0 &&
          pr.tid.load(std::memory_order_relaxed) == tid_of_who(who) &&
          pr.waiting.load(std::memory_order_relaxed) == 0) {
        return false;
      }
    }
    entries.push_back(e);
  }
  // Then on a consistent snapshot, with the certain detector's notion of blocked.
  std::vector<RecSnap> recs;
  if (!consistent_snapshot(recs)) return false;
  auto blocked = [](const RecSnap& r) {
    return r.waiting && r.deadline_ns == Deadline::never().ns() && !r.cancellable &&
           r.n_targets <= kTargets && r.parker != nullptr && !r.parker->decided();
  };
  const RecSnap* me = nullptr;
  for (const RecSnap& r : recs)
    if (&g_threads[r.slot] == self) me = &r;
  if (me == nullptr || !blocked(*me)) return false;
  std::vector<std::size_t> seen;
  for (const ProducerEntry* e : entries) {
    for (const auto& w : e->who) {
      const std::uint64_t who = w.load(std::memory_order_relaxed);
      if (who == 0) break;
      const RecSnap* p = nullptr;
      for (const RecSnap& r : recs)
        if (r.slot == slot_of_who(who) && r.tid == tid_of_who(who)) p = &r;
      if (p == nullptr) continue;  // exited: it will not set anything again
      if (!blocked(*p)) return false;
      if (p != me && std::find(seen.begin(), seen.end(), p->slot) == seen.end()) {
        seen.push_back(p->slot);
        producers.push_back(*p);
      }
    }
  }
  return versions_unchanged(recs);
}

std::string likely_text(const ThreadRec* self, const std::vector<RecSnap>& producers) {
  std::vector<RecSnap> all;
  RecSnap me;
  if (read_rec(static_cast<std::size_t>(self - g_threads), me)) all.push_back(me);
  all.insert(all.end(), producers.begin(), producers.end());
  std::string text = deadlock_text(all);
  // deadlock_text() words the certain case; say what this one is instead.
  const std::size_t eol = text.find('\n');
  text.replace(0, eol,
               "weft: deadlock (likely): every thread that ever ended a wait on these "
               "sources is blocked or gone");
  return text;
}

// Runs the likely check for a wait that closed no certain deadlock; reports, never refuses.
void report_likely(const ThreadRec* self, const WaitTarget* t, std::size_t n,
                   const diagnostics::Options& opt) noexcept {
  try {
    std::vector<RecSnap> producers;
    std::vector<ProducerEntry*> entries;
    if (!likely_deadlock(self, t, n, producers, entries)) return;
    for (ProducerEntry* e : entries) {
      std::uint32_t expected = 0;
      // Once per source until a new claim on it: another waiter on it stays silent. relaxed:
      // a flag; two waiters racing on it make one report.
      if (!e->reported.compare_exchange_strong(expected, 1, std::memory_order_relaxed)) return;
    }
    diagnostics::DeadlockReport report;
    report.certain = false;
    report.text = likely_text(self, producers);
    RecSnap me;
    if (read_rec(static_cast<std::size_t>(self - g_threads), me))
      report.threads.push_back(state_of(me));
    for (const RecSnap& p : producers) report.threads.push_back(state_of(p));
    if (opt.on_report) {
      opt.on_report(report);
    } else {
      (void)!::write(2, report.text.data(), report.text.size());
    }
  } catch (...) {
    // Out of memory for a report that is only a hint: drop it.
  }
}

// ---- lock order -------------------------------------------------------------------------------
// Lockdep's classes, abseil's acquire-before graph: each Lock/RLock belongs to a class (its
// name, else its construction site, else its address); acquiring a lock of class B while
// holding one of class A adds the edge A -> B. An edge that closes a cycle is a potential
// deadlock, reported when it is first seen, whether or not any thread ever blocks.
//
// Lock-free on the common path (an edge already known): a bit test. A new edge takes
// g_order_mutex (a std::mutex, never held while parked), searches for a path back and
// records where both locks were acquired.

constexpr std::size_t kClasses = 1024;  // a power of two
constexpr std::size_t kClassKey = 96;
constexpr std::size_t kEdgeInfos = 8192;  // a power of two

std::atomic<bool> g_order_on{false};
std::atomic<std::uint64_t> g_order_reports{0};  // a statistic: relaxed

struct OrderClass {
  std::atomic<std::uint64_t> hash{0};  // 0: free; published last (release)
  char key[kClassKey] = {};            // written before hash, then constant
  char label[kClassKey] = {};
};
OrderClass g_classes[kClasses];
// g_edges[a][b / 64] bit b % 64: the edge a -> b was seen. relaxed: a bit seen late only
// sends the acquirer to the mutex, which re-reads it.
std::atomic<std::uint64_t> g_edges[kClasses][kClasses / 64];
struct EdgeInfo {
  std::uint32_t key = 0;  // a * kClasses + b + 1; 0: free
  SourceSite first;       // where the held lock was acquired
  SourceSite second;      // where the other was then acquired
  std::uint64_t tid = 0;
};
EdgeInfo g_edge_info[kEdgeInfos];  // guarded by g_order_mutex
std::mutex g_order_mutex;

// The calling thread's held locks, as lock-order checking knows them. A Lock released by
// another thread stays here until the next acquire, which drops entries that the thread's
// record no longer lists as held.
struct OrderHeld {
  std::uintptr_t key = 0;
  std::uint32_t cls = 0;
  SourceSite site;
};
thread_local std::array<OrderHeld, kHeld> t_order_held{};
thread_local std::size_t t_order_n = 0;

std::uint64_t hash_str(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h | 1;
}

// The class of lock `key`; kClasses if the table is full or the lock is left out.
std::uint32_t class_of(std::uintptr_t key, SourceKind kind) noexcept {
  NameSnap ns;
  char k[kClassKey];
  char label[kClassKey];
  Buf b;
  Buf l;
  l.put(kind_name(kind));
  if (const NameEntry* e = find_name(key);
      e != nullptr && g_order_skip[e - g_names].load(std::memory_order_relaxed) != 0) {
    return kClasses;
  }
  const bool known = read_name(key, ns);
  if (known && ns.name[0] != '\0') {
    b.put("name:");
    b.put(ns.name);
    l.put(" \"");
    l.put(ns.name);
    l.put("\"");
  } else if (known && ns.file != nullptr) {
    b.put("site:");
    b.put(ns.file);
    b.put(":");
    b.put_u(ns.line);
    l.put(" (");
    l.put(basename_of(ns.file));
    l.put(":");
    l.put_u(ns.line);
    l.put(")");
  } else {
    b.put("addr:");
    b.put_hex(key);
    l.put(" @");
    l.put_hex(key);
  }
  const std::string_view kv = b.view().substr(0, kClassKey - 1);
  const std::uint64_t h = hash_str(b.view());
  std::size_t i = h & (kClasses - 1);
  for (std::size_t n = 0; n < kClasses; ++n, i = (i + 1) & (kClasses - 1)) {
    const std::uint64_t have = g_classes[i].hash.load(std::memory_order_acquire);
    if (have == 0) break;
    if (have == h && kv == g_classes[i].key) return static_cast<std::uint32_t>(i);
  }
  std::lock_guard<std::mutex> g(g_order_mutex);
  i = h & (kClasses - 1);
  for (std::size_t n = 0; n < kClasses; ++n, i = (i + 1) & (kClasses - 1)) {
    OrderClass& c = g_classes[i];
    const std::uint64_t have = c.hash.load(std::memory_order_relaxed);
    if (have == h && kv == c.key) return static_cast<std::uint32_t>(i);
    if (have != 0) continue;
    kv.copy(k, kv.size());
    k[kv.size()] = '\0';
    const std::string_view lv = l.view().substr(0, kClassKey - 1);
    lv.copy(label, lv.size());
    label[lv.size()] = '\0';
    std::memcpy(c.key, k, sizeof k);
    std::memcpy(c.label, label, sizeof label);
    c.hash.store(h, std::memory_order_release);  // publishes key and label
    return static_cast<std::uint32_t>(i);
  }
  return kClasses;
}

bool has_edge(std::uint32_t a, std::uint32_t b) noexcept {
  return (g_edges[a][b / 64].load(std::memory_order_relaxed) >> (b % 64)) & 1;
}

EdgeInfo* edge_info(std::uint32_t a, std::uint32_t b, bool create) noexcept {
  const auto key = static_cast<std::uint32_t>(a * kClasses + b + 1);  // < 2^20 + 1
  std::size_t i = hash_of(key) & (kEdgeInfos - 1);
  for (std::size_t n = 0; n < kEdgeInfos; ++n, i = (i + 1) & (kEdgeInfos - 1)) {
    if (g_edge_info[i].key == key) return &g_edge_info[i];
    if (g_edge_info[i].key == 0) {
      if (!create) return nullptr;
      g_edge_info[i].key = key;
      return &g_edge_info[i];
    }
  }
  return nullptr;
}

std::string site_text(SourceSite s) {
  if (s.file == nullptr) return {};
  return std::string(basename_of(s.file)) + ":" + std::to_string(s.line);
}

// A path from `from` to `to` in the graph (classes, from first to last), or empty. Under
// g_order_mutex.
std::vector<std::uint32_t> order_path(std::uint32_t from, std::uint32_t to) {
  std::vector<std::uint32_t> parent(kClasses, kClasses);
  std::vector<std::uint32_t> todo{from};
  parent[from] = from;
  while (!todo.empty()) {
    const std::uint32_t a = todo.back();
    todo.pop_back();
    if (a == to) break;
    for (std::uint32_t w = 0; w < kClasses / 64; ++w) {
      std::uint64_t bits = g_edges[a][w].load(std::memory_order_relaxed);
      while (bits != 0) {
        const auto b = static_cast<std::uint32_t>(w * 64 + __builtin_ctzll(bits));
        bits &= bits - 1;
        if (parent[b] != kClasses) continue;
        parent[b] = a;
        todo.push_back(b);
      }
    }
  }
  if (parent[to] == kClasses) return {};
  std::vector<std::uint32_t> path{to};
  while (path.back() != from) path.push_back(parent[path.back()]);
  std::reverse(path.begin(), path.end());
  return path;
}

diagnostics::LockOrderReport order_report(const OrderHeld& held, std::uint32_t cls, SourceSite site,
                                          const ThreadRec* r,
                                          const std::vector<std::uint32_t>& back) {
  diagnostics::LockOrderReport rep;
  const std::uint64_t tid = r->tid.load(std::memory_order_relaxed);  // own record
  rep.cycle.push_back({g_classes[held.cls].label, g_classes[cls].label, site_text(held.site),
                       site_text(site), tid});
  for (std::size_t i = 0; i + 1 < back.size(); ++i) {
    diagnostics::LockOrderReport::Edge e{g_classes[back[i]].label, g_classes[back[i + 1]].label, "",
                                         "", 0};
    if (const EdgeInfo* info = edge_info(back[i], back[i + 1], false)) {
      e.first_site = site_text(info->first);
      e.second_site = site_text(info->second);
      e.thread = info->tid;
    }
    rep.cycle.push_back(std::move(e));
  }
  auto at = [](const std::string& s) {
    return s.empty() ? std::string(" (site unknown)") : " at " + s;
  };
  char name[kThreadName];
  load_str(r->name, name);
  const std::string who =
      name[0] != '\0' ? "thread \"" + std::string(name) + "\" (tid " + std::to_string(tid) + ")"
                      : "thread (tid " + std::to_string(tid) + ")";
  const auto& now = rep.cycle[0];
  rep.text = "weft: lock order inversion (potential deadlock):\n    " + who + " acquires " +
             now.second + at(now.second_site) + "\n        while holding " + now.first +
             ", acquired" + at(now.first_site) + "\n";
  for (std::size_t i = 1; i < rep.cycle.size(); ++i) {
    const auto& e = rep.cycle[i];
    rep.text += "    earlier, tid " + std::to_string(e.thread) + " acquired " + e.second +
                at(e.second_site) + "\n        while holding " + e.first + ", acquired" +
                at(e.first_site) + "\n";
  }
  return rep;
}

// Lock `key` (of `kind`) was just acquired by the thread of record `r`, at `site`.
void order_acquired(ThreadRec* r, std::uintptr_t key, SourceKind kind, SourceSite here) {
  // Drop the entries of locks another thread released meanwhile.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < t_order_n; ++i) {
    bool held = false;
    for (const auto& h : r->held)
      held = held || h.load(std::memory_order_relaxed) == t_order_held[i].key;
    if (held) t_order_held[kept++] = t_order_held[i];
  }
  t_order_n = kept;
  const std::uint32_t cls = class_of(key, kind);
  if (cls == kClasses) return;
  std::vector<diagnostics::LockOrderReport> reports;
  for (std::size_t i = 0; i < t_order_n; ++i) {
    const OrderHeld& h = t_order_held[i];
    if (h.cls == cls || has_edge(h.cls, cls)) continue;
    std::lock_guard<std::mutex> g(g_order_mutex);
    if (has_edge(h.cls, cls)) continue;
    const std::vector<std::uint32_t> back = order_path(cls, h.cls);
    if (!back.empty()) reports.push_back(order_report(h, cls, here, r, back));
    if (EdgeInfo* info = edge_info(h.cls, cls, true)) {
      info->first = h.site;
      info->second = here;
      info->tid = r->tid.load(std::memory_order_relaxed);  // own record
    }
    g_edges[h.cls][cls / 64].fetch_or(std::uint64_t{1} << (cls % 64), std::memory_order_relaxed);
  }
  if (t_order_n < kHeld) t_order_held[t_order_n++] = OrderHeld{key, cls, here};
  if (reports.empty()) return;
  // acquire: pairs with enable()'s release.
  const diagnostics::Options* opt = g_options.load(std::memory_order_acquire);
  for (const auto& rep : reports) {
    g_order_reports.fetch_add(1, std::memory_order_relaxed);
    if (opt != nullptr && opt->on_lock_order) {
      opt->on_lock_order(rep);
    } else {
      (void)!::write(2, rep.text.data(), rep.text.size());
    }
  }
}

void order_released(std::uintptr_t key) noexcept {
  for (std::size_t i = t_order_n; i-- > 0;) {
    if (t_order_held[i].key != key) continue;
    for (std::size_t j = i + 1; j < t_order_n; ++j) t_order_held[j - 1] = t_order_held[j];
    --t_order_n;
    return;
  }
}

// ---- contention, printed ------------------------------------------------------------------

// The contention figures of print(): one line per primitive with a wait, in table order.
// Async-signal-safe.
void write_contention(int fd) noexcept {
  bool first = true;
  for (std::size_t i = 0; i < kNames; ++i) {
    const Figures& f = g_figures[i];
    // relaxed: figures (as everywhere below); acquire: pairs with diag_register's release.
    const std::uint64_t waits = f.waits.load(std::memory_order_relaxed);
    const std::uintptr_t key = g_names[i].key.load(std::memory_order_acquire);
    if (waits == 0 || key == 0 || key == kTombstone) continue;
    Buf b;
    if (first)
      b.put("weft: contention (waits, total, longest; charged to the thread that ended them)\n");
    first = false;
    b.put("    ");
    put_primitive(b, SourceKind(g_names[i].kind.load(std::memory_order_relaxed)), key);
    b.put(": ");
    b.put_u(waits);
    b.put(waits == 1 ? " wait, " : " waits, ");
    b.put_secs(f.waited_ns.load(std::memory_order_relaxed));
    b.put(", longest ");
    b.put_secs(f.longest_ns.load(std::memory_order_relaxed));
    for (std::size_t c = 0; c < kCharges; ++c) {
      const std::uint64_t tid = f.charged_tid[c].load(std::memory_order_relaxed);
      if (tid == 0) continue;
      b.put(c == 0 ? "; tid " : ", tid ");
      b.put_u(tid);
      b.put(" ");
      b.put_secs(f.charged_ns[c].load(std::memory_order_relaxed));
      b.put(" (");
      b.put_u(f.charged_waits[c].load(std::memory_order_relaxed));
      b.put(")");
    }
    b.put("\n");
    b.write_to(fd);
  }
}

bool on_wait(const WaitTarget* t, std::size_t n, Deadline deadline, bool cancellable) noexcept {
  ThreadRec* r = my_rec();
  if (r == nullptr) return true;
  const Waiter* parker = &Parker::current();  // already taken by this wait: cannot throw
  seq_begin(r->version);
  r->n_targets.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
  for (std::size_t i = 0; i < std::min(n, kTargets); ++i) {
    r->target[i].store(reinterpret_cast<std::uintptr_t>(t[i].object), std::memory_order_relaxed);
    r->target_kind[i].store(static_cast<std::uint8_t>(t[i].kind), std::memory_order_relaxed);
  }
  r->since_ns.store(Deadline::now().ns(), std::memory_order_relaxed);
  r->deadline_ns.store(deadline.ns(), std::memory_order_relaxed);
  r->cancellable.store(cancellable ? 1 : 0, std::memory_order_relaxed);
  const std::uint64_t seq = r->wait_seq.load(std::memory_order_relaxed) + 1;  // own record
  r->wait_seq.store(seq, std::memory_order_relaxed);
  r->parker.store(parker, std::memory_order_relaxed);
  r->waiting.store(1, std::memory_order_relaxed);
  seq_end(r->version);
  if (tracing()) [[unlikely]]
    trace(r, Ev::wait, n > 0 ? t[0].kind : SourceKind::other, n > 0 ? t[0].object : nullptr,
          static_cast<std::uint32_t>(n));

  // Marks this wait as considered by the detector, whatever the outcome.
  struct Checked {
    ThreadRec* r;
    std::uint64_t seq;
    Checked(ThreadRec* rec, std::uint64_t s) noexcept : r(rec), seq(s) {}
    Checked(const Checked&) = delete;
    Checked& operator=(const Checked&) = delete;
    // release: whoever sees the mark sees the report made before it.
    ~Checked() { r->checked_seq.store(seq, std::memory_order_release); }
  } checked(r, seq);
  // acquire: pairs with enable()'s release: the Options it points to are seen.
  const diagnostics::Options* opt = g_options.load(std::memory_order_acquire);
  if (opt == nullptr || opt->on_deadlock == diagnostics::OnDeadlock::ignore) return true;
  if (!deadline.is_never() || cancellable) return true;
  struct Counted {
    Counted() = default;
    Counted(const Counted&) = delete;
    Counted& operator=(const Counted&) = delete;
    ~Counted() { g_checks.fetch_add(1, std::memory_order_release); }  // after the verdict
  } counted;
  if (!may_close_deadlock(r, t, n)) {
    report_likely(r, t, n, *opt);
    return true;
  }
  try {
    std::vector<RecSnap> members;
    {
      std::lock_guard<std::mutex> g(g_detect_mutex);
      // relaxed: reported_seq is read and written under g_detect_mutex only.
      if (r->reported_seq.load(std::memory_order_relaxed) == seq) return true;  // reported
      if (!certain_deadlock(r, members)) {
        report_likely(r, t, n, *opt);
        return true;
      }
      for (const RecSnap& m : members)
        g_threads[m.slot].reported_seq.store(m.wait_seq,
                                             std::memory_order_relaxed);  // under the mutex
      if (opt->on_deadlock == diagnostics::OnDeadlock::raise) {
        // Not waiting after all (the loop unregisters and throws): a detector that runs
        // next must not count this thread.
        seq_begin(r->version);
        r->waiting.store(0, std::memory_order_relaxed);
        seq_end(r->version);
      }
    }
    if (!opt->trace_on_deadlock.empty() && tracing())
      diagnostics::write_trace(opt->trace_on_deadlock);
    diagnostics::DeadlockReport report;
    report.text = deadlock_text(members);
    for (const RecSnap& m : members) report.threads.push_back(state_of(m));
    if (opt->on_deadlock == diagnostics::OnDeadlock::abort) {
      (void)!::write(2, report.text.data(), report.text.size());
      std::abort();
    }
    if (opt->on_report) {
      opt->on_report(report);
    } else {
      (void)!::write(2, report.text.data(), report.text.size());
    }
    if (opt->on_deadlock != diagnostics::OnDeadlock::raise) return true;
    t_deadlock_text = std::move(report.text);
  } catch (...) {
    // Out of memory for the report: raise still refuses the park (a plain message).
    return opt->on_deadlock != diagnostics::OnDeadlock::raise;
  }
  return false;  // the loop unregisters and throws
}

void on_wake(const WaitTarget* t, std::size_t n, RoundEnd end, std::uint32_t index) noexcept {
  ThreadRec* r = t_rec;
  if (r == nullptr) return;
  seq_begin(r->version);
  r->waiting.store(0, std::memory_order_relaxed);
  seq_end(r->version);
  // acquire: pairs with the notifier's release in diag_claimed().
  const std::uint64_t who = r->claimed_by.exchange(0, std::memory_order_acquire);
  if (end == RoundEnd::claimed && index < n) {
    count_wait(t[index], Deadline::now().ns() - r->since_ns.load(std::memory_order_relaxed), who);
    if (who != 0) add_producer(t[index], who);
  } else if (end != RoundEnd::ready && n == 1) {
    count_wait(t[0], Deadline::now().ns() - r->since_ns.load(std::memory_order_relaxed), 0);
  }
  if (tracing()) [[unlikely]] {
    const WaitTarget w = index < n ? t[index] : WaitTarget{};
    if (end == RoundEnd::claimed) {
      // acquire: pairs with diag_claimed()'s release (the Parker's NOTIFIED orders it too).
      trace(r, Ev::wake, w.kind, w.object, r->pending_flow.exchange(0, std::memory_order_acq_rel));
    } else {
      trace(r, end == RoundEnd::cancelled ? Ev::cancel : Ev::timeout, w.kind, w.object, 0);
    }
  }
}

// ---- watchdog -----------------------------------------------------------------------------

struct Watchdog {
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::thread* thread = nullptr;  // leaked in a forked child, where the thread is gone
};
Watchdog g_watchdog;

void watchdog_loop(Clock::duration threshold, Clock::duration period,
                   const std::function<void(const diagnostics::ThreadState&)>& cb) {
  std::uint64_t reported[kThreads] = {};
  std::unique_lock<std::mutex> lk(g_watchdog.m);
  while (!g_watchdog.cv.wait_for(lk, period, [] { return g_watchdog.stop; })) {
    const std::int64_t now = Deadline::now().ns();
    const auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(threshold).count();
    RecSnap r;
    for (std::size_t s = 0, end = slots(); s < end; ++s) {
      if (!read_rec(s, r) || !r.waiting || now - r.since_ns < limit) continue;
      if (reported[s] == r.wait_seq) continue;
      reported[s] = r.wait_seq;
      if (cb) {
        cb(state_of(r));
      } else {
        Buf b;
        b.put("weft: long wait: ");
        b.write_to(2);
        write_thread(2, r, now);
      }
    }
  }
}

// ---- signals, fork ------------------------------------------------------------------------

// The fd each signal's dump goes to, by signal number (install_signal_handler). relaxed: the
// store precedes the sigaction() that installs the handler (the C++ model has no signal
// delivery to order them by; the system call does); a signal that comes while its fd is
// being changed writes to the previous one.
std::array<std::atomic<int>, NSIG> g_signal_fd{};
extern "C" void weft_diag_signal_handler(int signo) {
  const int saved = errno;
  write_all(signo > 0 && signo < NSIG
                ? g_signal_fd[static_cast<std::size_t>(signo)].load(std::memory_order_relaxed)
                : 2);
  errno = saved;
}

// A forked child has only the forking thread: the other records describe threads that do
// not exist there, and the watchdog thread is gone.
void after_fork_child() noexcept {
  // relaxed: the child has one thread.
  for (auto& r : g_threads) {
    if (&r == t_rec || r.in_use.load(std::memory_order_relaxed) == 0) continue;
    free_rec(&r);
  }
  new (&g_names_mutex) std::mutex();  // its holder, if any, did not come along
  new (&g_detect_mutex) std::mutex();
  new (&g_producers_mutex) std::mutex();
  new (&g_order_mutex) std::mutex();
  new (&g_retired_mutex) std::mutex();
  new (&g_watchdog.m) std::mutex();
  g_watchdog.thread = nullptr;  // leaked: std::thread's destructor would terminate
}

void register_atfork() {
  static const bool once = [] {
    ::pthread_atfork(nullptr, nullptr, [] { after_fork_child(); });
    return true;
  }();
  (void)once;
}

}  // namespace

// ---- the primitives' entry points (diag_hooks.hpp) ------------------------------------------

void diag_register(const void* object, SourceKind kind, std::string_view name,
                   const SourceSite* site) noexcept {
  const auto key = reinterpret_cast<std::uintptr_t>(object);
  std::lock_guard<std::mutex> g(g_names_mutex);
  g_diag_names_used.store(true, std::memory_order_relaxed);  // see diag_hooks.hpp
  NameEntry* e = find_name(key);
  if (e == nullptr) {
    std::size_t i = hash_of(key);
    for (std::size_t n = 0; n < kNames; ++n, i = (i + 1) & (kNames - 1)) {
      const std::uintptr_t k = g_names[i].key.load(std::memory_order_relaxed);
      if (k == 0 || k == kTombstone) {
        e = &g_names[i];
        break;
      }
    }
    if (e == nullptr) return;  // full: the object stays unnamed
    reset_entry_extras(static_cast<std::size_t>(e - g_names));
  }
  seq_begin(e->version);
  e->key.store(key, std::memory_order_relaxed);
  e->kind.store(static_cast<std::uint8_t>(kind), std::memory_order_relaxed);
  if (!name.empty() || e->file.load(std::memory_order_relaxed) == nullptr) store_str(e->name, name);
  if (site != nullptr) {
    e->file.store(site->file, std::memory_order_relaxed);
    e->line.store(site->line, std::memory_order_relaxed);
  }
  seq_end(e->version);
  // release: a reader that finds the key (acquire) sees a complete entry... or an odd
  // version, and retries.
  e->key.store(key, std::memory_order_release);
}

void diag_forget(const void* object) noexcept {
  const auto key = reinterpret_cast<std::uintptr_t>(object);
  forget_producers(key);
  if (find_name(key) == nullptr) return;  // the common case: never named, no lock taken
  std::lock_guard<std::mutex> g(g_names_mutex);
  NameEntry* e = find_name(key);
  if (e == nullptr) return;
  seq_begin(e->version);
  e->key.store(kTombstone, std::memory_order_relaxed);
  store_str(e->name, "");
  e->file.store(nullptr, std::memory_order_relaxed);
  seq_end(e->version);
}

void skip_order(const void* lock, SourceKind kind) {
  const auto key = reinterpret_cast<std::uintptr_t>(lock);
  if (find_name(key) == nullptr) diag_register(lock, kind, {}, nullptr);
  if (NameEntry* e = find_name(key)) g_order_skip[e - g_names].store(1, std::memory_order_relaxed);
}

void diag_lock_acquired(const void* lock, SourceKind kind, SourceSite site) noexcept {
  ThreadRec* r = my_rec();
  if (r == nullptr) return;
  // relaxed: an acquisition racing with enable() is checked, or not, once.
  if (g_order_on.load(std::memory_order_relaxed)) {
    try {
      order_acquired(r, reinterpret_cast<std::uintptr_t>(lock), kind, site);
    } catch (...) {
      // Out of memory for a report: lock-order checking misses this one.
    }
  }
  for (std::size_t i = 0; i < kHeld; ++i) {
    if (r->held[i].load(std::memory_order_relaxed) != 0) continue;
    seq_begin(r->version);
    r->held_kind[i].store(static_cast<std::uint8_t>(kind), std::memory_order_relaxed);
    r->held[i].store(reinterpret_cast<std::uintptr_t>(lock), std::memory_order_relaxed);
    seq_end(r->version);
    if (tracing()) [[unlikely]]
      trace(r, Ev::acquire, kind, lock, 0);
    return;
  }
}

void diag_lock_released(const void* lock) noexcept {
  const auto key = reinterpret_cast<std::uintptr_t>(lock);
  if (t_order_n != 0) order_released(key);
  if (ThreadRec* r = t_rec) {
    // relaxed: the calling thread's own record, which only it writes (a slot cleared by
    // another thread's release is not this key any more).
    for (std::size_t i = 0; i < kHeld; ++i) {
      auto& h = r->held[i];
      if (h.load(std::memory_order_relaxed) != key) continue;
      if (tracing()) [[unlikely]]
        trace(r, Ev::release, SourceKind(r->held_kind[i].load(std::memory_order_relaxed)), lock, 0);
      seq_begin(r->version);
      h.store(0, std::memory_order_relaxed);
      seq_end(r->version);
      return;
    }
    // Not held by this thread: a Lock (an RLock has an owner) that another thread acquired.
    if (tracing()) [[unlikely]]
      trace(r, Ev::release, SourceKind::lock, lock, 0);
  }
  // A Lock released by a thread that did not acquire it: clear the acquirer's slot.
  for (auto& r : g_threads) {
    if (r.in_use.load(std::memory_order_acquire) == 0) continue;
    for (auto& h : r.held) {
      std::uintptr_t expected = key;
      if (h.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) {
        r.version.fetch_add(2, std::memory_order_acq_rel);  // readers see a change
        return;
      }
    }
  }
}

void diag_claimed(const Waiter* woken) noexcept {
  ThreadRec* r = my_rec();
  const bool traced = tracing();
  // relaxed: only the ids' uniqueness matters, which the RMW gives.
  const std::uint32_t flow = traced ? g_next_flow.fetch_add(1, std::memory_order_relaxed) : 0;
  // relaxed parker: a thread's Parker is the same for all its waits, so only a claim in its
  // very first wait can miss it (and goes uncharged, untraced).
  for (std::size_t s = 0, end = slots(); s < end; ++s) {
    ThreadRec& w = g_threads[s];
    if (w.in_use.load(std::memory_order_acquire) == 0 ||
        w.parker.load(std::memory_order_relaxed) != woken) {
      continue;
    }
    // release: the woken thread's acquire exchange in on_wake sees who it was.
    if (r != nullptr) w.claimed_by.store(who_of(r), std::memory_order_release);
    if (!traced) return;
    w.pending_flow.store(flow, std::memory_order_release);
    if (r != nullptr) trace(r, Ev::notify, SourceKind::other, woken, flow, t_notify_as);
    return;
  }
}

void diag_notify_as(std::uint8_t op_plus_one) noexcept {
  t_notify_as = op_plus_one;
}

void diag_trace_op(TraceOp op, SourceKind kind, const void* object) noexcept {
  if (ThreadRec* r = my_rec(); r != nullptr)
    trace(r, Ev::op, kind, object, static_cast<std::uint32_t>(op));
}

void throw_deadlock() {
  std::string text = std::move(t_deadlock_text);
  throw Deadlock(text.empty() ? std::string("weft: deadlock") : text);
}

}  // namespace detail

// ---- the public API -----------------------------------------------------------------------

namespace diagnostics {

void enable(Options options) {
  detail::register_atfork();
  // Locks released while diagnostics were off are still listed: forget every holder.
  for (auto& r : detail::g_threads) {
    for (auto& h : r.held) {
      if (h.exchange(0, std::memory_order_acq_rel) != 0)
        r.version.fetch_add(2, std::memory_order_acq_rel);
    }
  }
  // Every Options ever installed is kept (reachable, never freed): a thread may still read
  // the previous ones in a hook.
  static std::mutex kept_mutex;
  static auto* kept = new std::vector<std::unique_ptr<const Options>>();
  const Options* installed = nullptr;
  {
    std::lock_guard<std::mutex> g(kept_mutex);
    kept->push_back(std::make_unique<const Options>(std::move(options)));
    installed = kept->back().get();
  }
  // release: a hook that loads the pointer (acquire) sees the Options. relaxed flags: a
  // thread that misses the change records (or checks) one operation less.
  detail::g_options.store(installed, std::memory_order_release);
  detail::g_order_on.store(installed->lock_order, std::memory_order_relaxed);
  detail::g_diag_flags.fetch_or(detail::kDiagTrack, std::memory_order_relaxed);
  detail::set_wait_hooks(&detail::kHooks);
}

void disable() {  // orders as in enable()
  detail::set_wait_hooks(nullptr);
  detail::g_diag_flags.fetch_and(~detail::kDiagTrack, std::memory_order_relaxed);
  detail::g_options.store(nullptr, std::memory_order_release);
  detail::g_order_on.store(false, std::memory_order_relaxed);
}

bool enabled() noexcept {  // relaxed: a snapshot of a flag
  return (detail::g_diag_flags.load(std::memory_order_relaxed) & detail::kDiagTrack) != 0;
}

void set_thread_name(std::string_view name) {
  detail::ThreadRec* r = detail::my_rec();
  if (r == nullptr) return;
  detail::seq_begin(r->version);
  detail::store_str(r->name, name);
  detail::seq_end(r->version);
}

void set_name(const void* p, SourceKind kind, std::string_view name) {
  detail::diag_register(p, kind, name, nullptr);
}
void set_name(const Lock& p, std::string_view name) {
  set_name(&p, SourceKind::lock, name);
}
void set_name(const RLock& p, std::string_view name) {
  set_name(&p, SourceKind::rlock, name);
}
void set_name(const Event& p, std::string_view name) {
  set_name(&p, SourceKind::event, name);
}
void set_name(const Semaphore& p, std::string_view name) {
  set_name(&p, SourceKind::semaphore, name);
}
void set_name(const Condition& p, std::string_view name) {
  set_name(&p, SourceKind::condition, name);
}
void set_name(const Barrier& p, std::string_view name) {
  set_name(&p, SourceKind::barrier, name);
}

std::string name_of(const void* p) {
  detail::NameSnap ns;
  if (!detail::read_name(reinterpret_cast<std::uintptr_t>(p), ns)) return {};
  return ns.name;
}

Report snapshot() {
  Report rep;
  detail::RecSnap r;
  for (std::size_t s = 0, end = detail::slots(); s < end; ++s)
    if (detail::read_rec(s, r)) rep.threads.push_back(detail::state_of(r));
  rep.contention = contention();
  return rep;
}

void skip_lock_order(const Lock& lock) {
  detail::skip_order(&lock, SourceKind::lock);
}
void skip_lock_order(const RLock& lock) {
  detail::skip_order(&lock, SourceKind::rlock);
}

std::uint64_t lock_order_reports() noexcept {  // relaxed: a statistic
  return detail::g_order_reports.load(std::memory_order_relaxed);
}

void reset_lock_order() {
  std::lock_guard<std::mutex> g(detail::g_order_mutex);  // relaxed bits: see g_edges
  for (auto& row : detail::g_edges)
    for (auto& w : row) w.store(0, std::memory_order_relaxed);
  for (auto& e : detail::g_edge_info) e = detail::EdgeInfo{};
}

std::vector<Contention> contention() {
  std::vector<Contention> out;
  for (std::size_t i = 0; i < detail::kNames; ++i) {
    const detail::Figures& f = detail::g_figures[i];
    const std::uint64_t waits = f.waits.load(std::memory_order_relaxed);
    const std::uintptr_t key = detail::g_names[i].key.load(std::memory_order_acquire);
    if (waits == 0 || key == 0 || key == detail::kTombstone) continue;
    Contention c;
    c.primitive = detail::primitive_of(
        SourceKind(detail::g_names[i].kind.load(std::memory_order_relaxed)), key);
    c.waits = waits;
    c.waited = detail::to_time(f.waited_ns.load(std::memory_order_relaxed)).time_since_epoch();
    c.longest = detail::to_time(f.longest_ns.load(std::memory_order_relaxed)).time_since_epoch();
    c.uncharged_waits = f.uncharged.load(std::memory_order_relaxed);
    for (std::size_t k = 0; k < detail::kCharges; ++k) {
      const std::uint64_t tid = f.charged_tid[k].load(std::memory_order_relaxed);
      if (tid == 0) continue;
      Contention::Charge ch;
      ch.thread = tid;
      ch.waits = f.charged_waits[k].load(std::memory_order_relaxed);
      ch.waited =
          detail::to_time(f.charged_ns[k].load(std::memory_order_relaxed)).time_since_epoch();
      detail::RecSnap r;
      for (std::size_t s = 0, end = detail::slots(); s < end; ++s)
        if (detail::read_rec(s, r) && r.tid == tid) ch.name = r.name;
      c.charged.push_back(std::move(ch));
    }
    std::sort(c.charged.begin(), c.charged.end(),
              [](const auto& a, const auto& b) { return a.waited > b.waited; });
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.waited > b.waited; });
  return out;
}

void reset_contention() {
  for (auto& f : detail::g_figures) {
    f.waits.store(0, std::memory_order_relaxed);
    f.waited_ns.store(0, std::memory_order_relaxed);
    f.longest_ns.store(0, std::memory_order_relaxed);
    f.uncharged.store(0, std::memory_order_relaxed);
    for (std::size_t c = 0; c < detail::kCharges; ++c) {
      f.charged_tid[c].store(0, std::memory_order_relaxed);
      f.charged_waits[c].store(0, std::memory_order_relaxed);
      f.charged_ns[c].store(0, std::memory_order_relaxed);
    }
  }
}

std::string format(const Report& report) {
  std::string out;
  const auto now = Clock::now();
  auto prim = [](const Primitive& p) {
    std::string s(detail::kind_name(p.kind));
    if (!p.name.empty()) s += " \"" + p.name + "\"";
    char addr[32];
    std::snprintf(addr, sizeof addr, " @%p", p.address);
    s += addr;
    if (!p.site.empty()) s += " (" + p.site + ")";
    if (p.kind == SourceKind::lock || p.kind == SourceKind::rlock)
      s += p.holder ? " held by tid " + std::to_string(*p.holder) : std::string(" holder unknown");
    return s;
  };
  for (const ThreadState& t : report.threads) {
    out += "thread ";
    if (!t.name.empty()) out += "\"" + t.name + "\" ";
    out += "(tid " + std::to_string(t.id) + ")";
    if (!t.group.empty()) out += " group \"" + t.group + "\"";
    if (t.waiting) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - *t.since);
      out += " waiting for " + std::to_string(ms.count()) + "ms";
      if (t.deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*t.deadline - now);
        out += ", deadline in " + std::to_string(left.count()) + "ms";
      } else {
        out += ", no deadline";
      }
      if (t.cancellable) out += ", cancellable";
      out += t.waits_on.size() > 1 ? ", on any of:\n" : ", on:\n";
      for (const Primitive& p : t.waits_on) out += "    " + prim(p) + "\n";
    } else {
      out += " running\n";
    }
    for (const Primitive& p : t.holds) out += "    holds " + prim(p) + "\n";
  }
  return out + format(report.contention);
}

std::string format(const std::vector<Contention>& figures) {
  if (figures.empty()) return {};
  auto ms = [](Clock::duration d) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3fms", std::chrono::duration<double, std::milli>(d).count());
    return std::string(b);
  };
  std::string out = "contention (waits, total, longest; charged to the thread that ended them):\n";
  for (const Contention& c : figures) {
    const Primitive& p = c.primitive;
    out += "    " + std::string(detail::kind_name(p.kind));
    if (!p.name.empty()) out += " \"" + p.name + "\"";
    if (!p.site.empty()) out += " (" + p.site + ")";
    out += ": " + std::to_string(c.waits) + (c.waits == 1 ? " wait, " : " waits, ") + ms(c.waited) +
           ", longest " + ms(c.longest);
    for (std::size_t i = 0; i < c.charged.size(); ++i) {
      const auto& ch = c.charged[i];
      out += i == 0 ? "; " : ", ";
      out += ch.name.empty() ? "tid " + std::to_string(ch.thread) : "\"" + ch.name + "\"";
      out += " " + ms(ch.waited) + " (" + std::to_string(ch.waits) + ")";
    }
    if (c.uncharged_waits != 0) out += ", " + std::to_string(c.uncharged_waits) + " uncharged";
    out += "\n";
  }
  return out;
}

void print(int fd) noexcept {
  detail::write_all(fd);
}

// relaxed flags: as in enable().
void start_tracing() {
  {
    std::lock_guard<std::mutex> g(detail::g_retired_mutex);
    detail::g_retired.clear();
  }
  detail::g_diag_flags.fetch_or(detail::kDiagTrace, std::memory_order_relaxed);
}
void stop_tracing() {
  detail::g_diag_flags.fetch_and(~detail::kDiagTrace, std::memory_order_relaxed);
}

namespace {

std::string quoted(std::string_view v) {
  std::string q = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') q += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) q += c;
  }
  return q + "\"";
}

// Nanoseconds as trace-event microseconds.
std::string micros(std::int64_t ns) {
  char b[40];
  std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(ns / 1000),
                static_cast<long long>(ns % 1000));
  return b;
}

// What a notifier did, named by the kind of wait it ended (the woken thread's wake event
// says through which source it was woken): a claim of a getter is a put, and so on.
std::string_view notifier_op(SourceKind woken_on) noexcept {
  switch (woken_on) {
    case SourceKind::event:
      return "set";
    case SourceKind::lock:
    case SourceKind::rlock:
    case SourceKind::semaphore:
      return "release";
    case SourceKind::queue_get:
      return "put";
    case SourceKind::queue_put:
      return "get";
    case SourceKind::queue_join:
      return "task_done";
    case SourceKind::condition:
    case SourceKind::barrier:
    case SourceKind::other:
      break;
  }
  return "notify";
}

std::string_view op_name(std::uint32_t op) noexcept {
  switch (static_cast<detail::TraceOp>(op)) {
    case detail::TraceOp::put:
      return "put";
    case detail::TraceOp::get:
      return "get";
    case detail::TraceOp::set:
      return "set";
    case detail::TraceOp::acquire:
      return "acquire";
    case detail::TraceOp::shutdown:
      return "shutdown";
  }
  return "op";
}

// "Lock \"accounts\"": the kind (a queue as "Queue" when `plain_queue`) and the name, if any.
// `saved`: the names kept with an exited thread's events, used when the primitive has no
// name now.
using SavedNames = std::unordered_map<std::uintptr_t, std::string>;
std::string what_of(SourceKind kind, std::uintptr_t obj, bool plain_queue,
                    const SavedNames* saved) {
  const bool queue = kind == SourceKind::queue_get || kind == SourceKind::queue_put ||
                     kind == SourceKind::queue_join;
  std::string what(plain_queue && queue ? std::string_view("Queue") : detail::kind_name(kind));
  std::string name = detail::primitive_of(kind, obj).name;
  if (name.empty() && saved != nullptr) {
    if (auto it = saved->find(obj); it != saved->end()) name = it->second;
  }
  if (!name.empty()) what += " \"" + name + "\"";
  return what;
}

}  // namespace

// The JSON is built once per dump, one event per line, with escaped quotes kept visible
// beside the keys they delimit. Two passes: the rings are copied first, so that a
// notifier's slice can be named by the wait it ended (found by its flow id in the woken
// thread's ring).
// NOLINTBEGIN(performance-inefficient-string-concatenation,modernize-raw-string-literal)
std::string trace_json() {
  using detail::Ev;
  struct Track {
    std::uint64_t tid;
    std::string name;
    std::vector<detail::TraceSnap> events;
    SavedNames names;  // an exited thread's
  };
  std::vector<Track> tracks;
  struct Woken {
    SourceKind kind;
    std::uintptr_t obj;
    std::uint64_t tid;
    const SavedNames* names;
  };
  std::unordered_map<std::uint32_t, Woken> woken_by_flow;
  for (std::size_t s = 0, end = detail::slots(); s < end; ++s) {
    detail::RecSnap snap;
    if (!detail::read_rec(s, snap)) continue;
    tracks.push_back(Track{snap.tid,
                           snap.name[0] != '\0' ? std::string(snap.name) : "",
                           detail::ring_of(detail::g_threads[s]),
                           {}});
  }
  {
    std::lock_guard<std::mutex> g(detail::g_retired_mutex);
    for (const detail::RetiredTrack& r : detail::g_retired)
      tracks.push_back(Track{r.tid, r.name, r.events, r.names});
  }
  for (const Track& t : tracks) {
    for (const detail::TraceSnap& e : t.events)
      if (e.type == Ev::wake && e.flow != 0)
        woken_by_flow[e.flow] = Woken{e.kind, e.obj, t.tid, &t.names};
  }

  std::string out = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  const std::string pid = std::to_string(::getpid());
  bool first = true;
  auto emit = [&](const std::string& e) {
    if (!first) out += ",\n";
    first = false;
    out += e;
  };
  for (const Track& t : tracks) {
    const std::string tid = std::to_string(t.tid);
    const std::string where = ",\"pid\":" + pid + ",\"tid\":" + tid;
    emit("{\"ph\":\"M\",\"name\":\"thread_name\"" + where +
         ",\"args\":{\"name\":" + quoted(t.name.empty() ? "thread " + tid : t.name) + "}}");
    bool open = false;
    for (const detail::TraceSnap& e : t.events) {
      const std::string tsf = ",\"ts\":" + micros(e.ts);
      switch (e.type) {
        case Ev::wait:
          emit("{\"ph\":\"B\",\"name\":" +
               quoted("wait " + what_of(e.kind, e.obj, false, &t.names)) + tsf + where + "}");
          open = true;
          break;
        case Ev::wake:
        case Ev::timeout:
        case Ev::cancel: {
          if (!open) break;  // its wait fell off the ring
          const char* how = e.type == Ev::wake      ? "wake"
                            : e.type == Ev::timeout ? "timeout"
                                                    : "cancel";
          if (e.type == Ev::wake && e.flow != 0) {
            emit("{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"wake\",\"name\":\"wake\",\"id\":" +
                 std::to_string(e.flow) + tsf + where + "}");
          }
          emit("{\"ph\":\"E\",\"ts\":" + micros(e.ts + 1) + where + ",\"args\":{\"end\":\"" + how +
               "\",\"via\":" + quoted(what_of(e.kind, e.obj, false, &t.names)) + "}}");
          open = false;
          break;
        }
        case Ev::notify: {
          // Named by the wait it ended; "notify" if that wake is not in the trace.
          // A claim made in a DiagNotifiesAs scope is named by that operation instead.
          std::string name = e.as != 0 ? std::string(op_name(e.as - 1U)) : "notify";
          std::string args;
          if (auto w = woken_by_flow.find(e.flow); w != woken_by_flow.end()) {
            name = std::string(e.as != 0 ? op_name(e.as - 1U) : notifier_op(w->second.kind)) + " " +
                   what_of(w->second.kind, w->second.obj, true, w->second.names);
            args = ",\"args\":{\"woke\":" + std::to_string(w->second.tid) + "}";
          }
          emit("{\"ph\":\"X\",\"name\":" + quoted(name) + ",\"dur\":0.001" + tsf + where + args +
               "}");
          emit("{\"ph\":\"s\",\"cat\":\"wake\",\"name\":\"wake\",\"id\":" + std::to_string(e.flow) +
               tsf + where + "}");
          break;
        }
        case Ev::acquire:
        case Ev::release:
          emit("{\"ph\":\"i\",\"s\":\"t\",\"name\":" +
               quoted((e.type == Ev::acquire ? "acquire " : "release ") +
                      what_of(e.kind, e.obj, false, &t.names)) +
               tsf + where + "}");
          break;
        case Ev::op:
          emit("{\"ph\":\"i\",\"s\":\"t\",\"name\":" +
               quoted(std::string(op_name(e.flow)) + " " + what_of(e.kind, e.obj, true, &t.names)) +
               tsf + where + "}");
          break;
      }
    }
  }
  out += "\n]}\n";
  return out;
}

// NOLINTEND(performance-inefficient-string-concatenation,modernize-raw-string-literal)

bool write_trace(const std::string& path) {
  const std::string json = trace_json();
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  return std::fclose(f) == 0 && ok;
}

std::uint64_t deadlock_checks() noexcept {
  // acquire: pairs with the release after a verdict, so its report is visible.
  return detail::g_checks.load(std::memory_order_acquire);
}

bool install_signal_handler(int signo, int fd) noexcept {
  detail::register_atfork();
  if (signo <= 0 || signo >= NSIG) return false;
  detail::g_signal_fd[static_cast<std::size_t>(signo)].store(fd, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_handler = detail::weft_diag_signal_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  return ::sigaction(signo, &sa, nullptr) == 0;
}

void start_watchdog(Clock::duration threshold, Clock::duration period,
                    std::function<void(const ThreadState&)> on_long_wait) {
  stop_watchdog();
  detail::register_atfork();
  std::lock_guard<std::mutex> g(detail::g_watchdog.m);
  detail::g_watchdog.stop = false;
  detail::g_watchdog.thread = new std::thread([threshold, period, cb = std::move(on_long_wait)] {
    detail::watchdog_loop(threshold, period, cb);
  });
}

void stop_watchdog() {
  std::thread* t = nullptr;
  {
    std::lock_guard<std::mutex> g(detail::g_watchdog.m);
    t = detail::g_watchdog.thread;
    detail::g_watchdog.thread = nullptr;
    detail::g_watchdog.stop = true;
  }
  detail::g_watchdog.cv.notify_all();
  if (t != nullptr) {
    t->join();
    delete t;
  }
}

Group::Group(std::string_view name, std::size_t size) {
  // relaxed: only uniqueness matters, which the RMW gives.
  const std::uint32_t id = detail::g_next_group.fetch_add(1, std::memory_order_relaxed);
  for (auto& g : detail::g_groups) {
    std::uint32_t expected = 0;
    // Claim a free slot (the relaxed load keeps a full scan read-only); its id is ~0 (no
    // group's) until size and name are written, then published by the release store.
    if (g.id.load(std::memory_order_relaxed) == 0 &&
        g.id.compare_exchange_strong(expected, ~0U, std::memory_order_acq_rel)) {
      g.size.store(static_cast<std::uint32_t>(size), std::memory_order_relaxed);
      detail::store_str(g.name, name);
      g.id.store(id, std::memory_order_release);
      id_ = id;
      return;
    }
  }
}

Group::~Group() {
  // release: the slot's next claimer (acq_rel CAS) writes after this group's last use.
  if (detail::GroupSlot* g = detail::find_group(id_)) g->id.store(0, std::memory_order_release);
}

void Group::join() {  // NOLINT(readability-make-member-function-const): the membership changes
  detail::ThreadRec* r = detail::my_rec();
  if (r == nullptr || id_ == 0) return;
  detail::seq_begin(r->version);
  r->group.store(id_, std::memory_order_relaxed);
  detail::seq_end(r->version);
}

}  // namespace diagnostics
}  // namespace weft
