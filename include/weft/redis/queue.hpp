// weft/redis/queue.hpp: weft's Queue, LifoQueue and PriorityQueue over Redis, shared by
// every process and machine that reaches the server (docs/redis.md).
//
// The contract is the in-process queues' (weft/queue.hpp), across all clients of a queue,
// with these differences:
//   * delivery is at least once: a get leases the item; it leaves the queue only when
//     task_done acknowledges it, and returns to the queue if the client that got it stops
//     renewing its lease (crash, SIGSTOP, partition) before that. A get may thus return an
//     item another client got before; task_done(receipt) says whether it was the first
//     acknowledgement.
//   * task_done() acknowledges the oldest item this queue object got and has not
//     acknowledged; task_done(receipt) a specific one (see get_delivery).
//   * qsize() counts the items waiting for a get; leased items are not counted, so qsize can
//     exceed maxsize for a moment when leases of dead clients expire.
//   * every call may throw weft::redis::Error when the server stays unreachable past the
//     call's deadline (Options::retry_min / retry_max for calls without one);
//     qsize/empty/full/unfinished_tasks are not noexcept.
//   * shutdown(true) removes the items waiting for a get (not the leased ones) and returns
//     them to the caller (again, if its reply was lost and it retried).
//   * a queue object serves the one queue it opened: after that queue is destroyed (and
//     perhaps made again under its name), each call throws weft::redis::QueueGone.
//
// Items are stored as bytes by a codec: a type C with
//     static std::string C::encode(const T&);
//     static T C::decode(std::string_view);      // throws on malformed input
// Built in (DefaultCodec<T>): std::string, std::vector<std::byte>, std::vector<std::uint8_t>,
// and any trivially copyable T (its object representation: same build on both ends).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <weft/errors.hpp>
#include <weft/redis/client.hpp>

namespace weft::redis {

// ---- codecs -------------------------------------------------------------------------------
struct StringCodec {
  static std::string encode(const std::string& s) { return s; }
  static std::string decode(std::string_view s) { return std::string(s); }
};

template <class Byte>
struct BytesCodec {
  static std::string encode(const std::vector<Byte>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
  }
  static std::vector<Byte> decode(std::string_view s) {
    std::vector<Byte> v(s.size());
    if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
    return v;
  }
};

template <class T>
requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
struct TrivialCodec {
  static std::string encode(const T& v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static T decode(std::string_view s) {
    if (s.size() != sizeof(T))
      throw Error("weft::redis: malformed item: " + std::to_string(s.size()) +
                  " bytes for a type of " + std::to_string(sizeof(T)));
    T v;
    std::memcpy(&v, s.data(), sizeof(T));
    return v;
  }
};

template <class T>
struct DefaultCodec : TrivialCodec<T> {};
template <>
struct DefaultCodec<std::string> : StringCodec {};
template <>
struct DefaultCodec<std::vector<std::byte>> : BytesCodec<std::byte> {};
template <>
struct DefaultCodec<std::vector<std::uint8_t>> : BytesCodec<std::uint8_t> {};

template <class C, class T>
concept CodecFor = requires(const T& v, std::string_view s) {
  { C::encode(v) } -> std::convertible_to<std::string>;
  { C::decode(s) } -> std::same_as<T>;
};

// An item with the receipt that acknowledges it (task_done(receipt)) and its priority
// (PriorityQueue; 0 otherwise).
template <class T>
struct Delivery {
  T item;
  std::string receipt;
  double priority = 0;
};

namespace detail {

using Deadline = Clock::time_point;

template <class Rep, class Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) {
  if (timeout < std::chrono::duration<Rep, Period>::zero())
    throw std::invalid_argument("weft::redis: timeout must be a non-negative duration");
  if (timeout == std::chrono::duration<Rep, Period>::max()) return Deadline::max();
  using Wide = std::chrono::duration<long double, std::nano>;
  const Wide left = Wide(Deadline::max() - Clock::now());
  if (Wide(timeout) >= left) return Deadline::max();
  return Clock::now() + std::chrono::ceil<Clock::duration>(timeout);
}

inline constexpr Deadline kNever = Deadline::max();
inline Deadline poll() {
  return Deadline::min();
}

template <class T, class Codec, Kind K>
class RedisQueue {
 public:
  using value_type = T;
  using codec_type = Codec;
  static constexpr bool kPriority = K == Kind::priority;

  // Opens (creating it if needed) the queue called `name` on the server. maxsize <= 0:
  // unbounded. The first client fixes kind and maxsize; a client that disagrees gets
  // std::invalid_argument.
  RedisQueue(std::string name, std::ptrdiff_t maxsize, Options options)
      : client_(std::move(name), K, maxsize, std::move(options)) {}
  explicit RedisQueue(std::string name, Options options = {})
      : RedisQueue(std::move(name), 0, std::move(options)) {}

  // ---- put (FIFO / LIFO) ----------------------------------------------------------------
  // Blocks while full. Throws ShutDown.
  void put(const T& item) requires(!kPriority) { put_impl(item, 0, kNever, nullptr); }
  // Throws Full on timeout.
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) requires(!kPriority) {
    put_impl(item, 0, deadline_after(timeout), nullptr);
  }
  // Throws Cancelled when stopped.
  void put(const T& item, std::stop_token stop) requires(!kPriority) {
    put_impl(item, 0, kNever, &stop);
  }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout,
           std::stop_token stop) requires(!kPriority) {
    put_impl(item, 0, deadline_after(timeout), &stop);
  }
  void put_nowait(const T& item) requires(!kPriority) { put_impl(item, 0, poll(), nullptr); }
  bool try_put(const T& item) requires(!kPriority) {
    return try_put_impl(item, 0, poll(), nullptr);
  }
  template <class Rep, class Period>
  bool try_put(const T& item, std::chrono::duration<Rep, Period> timeout) requires(!kPriority) {
    return try_put_impl(item, 0, deadline_after(timeout), nullptr);
  }
  bool try_put(const T& item, std::stop_token stop) requires(!kPriority) {
    return try_put_impl(item, 0, kNever, &stop);
  }
  // Puts every item in order, pipelined into as few round trips as the queue's room
  // allows; blocks while full. Returns how many were put: all of them, or fewer when the
  // queue was shut down (the first ones are in the queue then).
  std::size_t put_many(std::span<const T> items) requires(!kPriority) {
    return put_many_impl(items, nullptr);
  }

  // ---- put (PriorityQueue): the smallest priority first; equal priorities FIFO ----------
  void put(double priority, const T& item) requires kPriority {
    put_impl(item, priority, kNever, nullptr);
  }
  template <class Rep, class Period>
  void put(double priority, const T& item,
           std::chrono::duration<Rep, Period> timeout) requires kPriority {
    put_impl(item, priority, deadline_after(timeout), nullptr);
  }
  void put(double priority, const T& item, std::stop_token stop) requires kPriority {
    put_impl(item, priority, kNever, &stop);
  }
  template <class Rep, class Period>
  void put(double priority, const T& item, std::chrono::duration<Rep, Period> timeout,
           std::stop_token stop) requires kPriority {
    put_impl(item, priority, deadline_after(timeout), &stop);
  }
  void put_nowait(double priority, const T& item) requires kPriority {
    put_impl(item, priority, poll(), nullptr);
  }
  bool try_put(double priority, const T& item) requires kPriority {
    return try_put_impl(item, priority, poll(), nullptr);
  }
  template <class Rep, class Period>
  bool try_put(double priority, const T& item,
               std::chrono::duration<Rep, Period> timeout) requires kPriority {
    return try_put_impl(item, priority, deadline_after(timeout), nullptr);
  }
  std::size_t put_many(std::span<const std::pair<double, T>> items) requires kPriority {
    return put_many_impl(items, nullptr);
  }

  // ---- get --------------------------------------------------------------------------------
  // Blocks while empty. Throws ShutDown once shut down and empty.
  T get() { return get_impl(kNever, nullptr); }
  // Throws Empty on timeout.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_impl(deadline_after(timeout), nullptr);
  }
  // Throws Cancelled when stopped.
  T get(std::stop_token stop) { return get_impl(kNever, &stop); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return get_impl(deadline_after(timeout), &stop);
  }
  T get_nowait() { return get_impl(poll(), nullptr); }
  // nullopt when empty at the deadline, shut down and empty, or stopped.
  std::optional<T> try_get() { return try_get_impl(poll(), nullptr); }
  template <class Rep, class Period>
  std::optional<T> try_get(std::chrono::duration<Rep, Period> timeout) {
    return try_get_impl(deadline_after(timeout), nullptr);
  }
  std::optional<T> try_get(std::stop_token stop) { return try_get_impl(kNever, &stop); }
  template <class Rep, class Period>
  std::optional<T> try_get(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return try_get_impl(deadline_after(timeout), &stop);
  }

  // The item with its receipt; acknowledge it with task_done(receipt) (task_done() does not
  // count it). Same blocking and errors as get().
  Delivery<T> get_delivery() { return std::move(get_deliveries(1, kNever, nullptr).front()); }
  template <class Rep, class Period>
  Delivery<T> get_delivery(std::chrono::duration<Rep, Period> timeout) {
    return std::move(get_deliveries(1, deadline_after(timeout), nullptr).front());
  }
  Delivery<T> get_delivery(std::stop_token stop) {
    return std::move(get_deliveries(1, kNever, &stop).front());
  }

  // 1..max items in one round trip; blocks for the first. Each counts for task_done().
  // Throws ShutDown once shut down and empty.
  std::vector<T> get_many(std::size_t max) { return get_many_impl(max, kNever); }
  // Throws Empty on timeout.
  template <class Rep, class Period>
  std::vector<T> get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
    return get_many_impl(max, deadline_after(timeout));
  }

  // ---- tasks ------------------------------------------------------------------------------
  // Acknowledges the oldest item this object got (get, get_many, consume) and has not
  // acknowledged. std::logic_error if there is none.
  void task_done() { client_.ack_oldest(1); }
  // The n oldest at once, in one round trip (after get_many, say); all or none.
  void task_done(std::size_t n) { client_.ack_oldest(n); }
  // Acknowledges a specific item. true: this was its first acknowledgement.
  bool task_done(const std::string& receipt) { return client_.ack({receipt}) == 1; }
  // Acknowledges several; returns how many were first acknowledgements.
  std::size_t task_done(const std::vector<std::string>& receipts) {
    return receipts.empty() ? 0 : client_.ack(receipts);
  }
  // Puts an item got with a receipt back in the queue without acknowledging it.
  void release(const std::string& receipt) { client_.release({receipt}); }

  // Blocks until every item put by anyone has been acknowledged (or removed by
  // shutdown(true)).
  void join() { client_.join(kNever, nullptr); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return client_.join(deadline_after(timeout), nullptr) == Status::ok;
  }
  void join(std::stop_token stop) {
    if (client_.join(kNever, &stop) == Status::cancelled) throw Cancelled();
  }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return client_.join(deadline_after(timeout), &stop) == Status::ok;
  }
  std::uint64_t unfinished_tasks() {
    return static_cast<std::uint64_t>(client_.stats().unfinished);
  }

  // Puts throw ShutDown from now on, in every client; blocked callers everywhere wake.
  // immediate: also removes the items waiting for a get (returned, in get order) and
  // counts them as done.
  std::vector<T> shutdown(bool immediate = false) {
    std::vector<T> out;
    for (auto& p : client_.shutdown(immediate)) out.push_back(Codec::decode(p));
    return out;
  }
  bool is_shutdown() { return client_.stats().shutdown != 0; }

  // ---- state ------------------------------------------------------------------------------
  std::size_t qsize() { return static_cast<std::size_t>(client_.stats().ready); }
  bool empty() { return qsize() == 0; }
  bool full() {
    const Stats s = client_.stats();
    return s.maxsize > 0 && s.ready >= s.maxsize;
  }
  std::ptrdiff_t maxsize() const noexcept { return static_cast<std::ptrdiff_t>(client_.maxsize()); }
  Stats stats() { return client_.stats(); }
  const std::string& name() const noexcept { return client_.name(); }
  // Deletes the queue's keys on the server (tear-down; nobody may be using it).
  void destroy() { client_.destroy(); }

  // ---- consume(): the items as they are got, until shut down and drained (or stopped) ----
  class ConsumeRange {
   public:
    class iterator {
     public:
      using iterator_concept = std::input_iterator_tag;
      using value_type = T;
      using difference_type = std::ptrdiff_t;
      using reference = T&&;
      iterator() = default;
      reference operator*() const { return std::move(*range_->current_); }
      iterator& operator++() {
        range_->advance();
        return *this;
      }
      void operator++(int) { ++*this; }
      friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
        return it.at_end();
      }

     private:
      friend class ConsumeRange;
      explicit iterator(ConsumeRange* r) noexcept : range_(r) {}
      bool at_end() const noexcept { return !range_->current_.has_value(); }
      ConsumeRange* range_ = nullptr;
    };
    iterator begin() {
      advance();
      return iterator(this);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

   private:
    friend class RedisQueue;
    friend class iterator;
    ConsumeRange(RedisQueue& q, std::optional<std::stop_token> stop)
        : queue_(&q), stop_(std::move(stop)) {}
    void advance() {
      current_.reset();
      current_ = queue_->try_get_impl(kNever, stop_ ? &*stop_ : nullptr);
    }
    RedisQueue* queue_;
    std::optional<std::stop_token> stop_;
    std::optional<T> current_;
  };
  ConsumeRange consume() { return ConsumeRange(*this, std::nullopt); }
  ConsumeRange consume(std::stop_token stop) { return ConsumeRange(*this, std::move(stop)); }

 private:
  Status try_put_status(const T& item, double priority, Deadline d, const std::stop_token* st) {
    std::vector<RawPut> one(1);
    one[0].payload = Codec::encode(item);
    one[0].priority = priority;
    std::size_t done = 0;
    return client_.put(one, d, st, done);
  }
  void put_impl(const T& item, double priority, Deadline d, const std::stop_token* st) {
    switch (try_put_status(item, priority, d, st)) {
      case Status::ok:
        return;
      case Status::unavailable:
        throw Full();
      case Status::shutdown:
        throw ShutDown();
      case Status::cancelled:
        throw Cancelled();
    }
  }
  bool try_put_impl(const T& item, double priority, Deadline d, const std::stop_token* st) {
    return try_put_status(item, priority, d, st) == Status::ok;
  }
  template <class Range>
  std::size_t put_many_impl(const Range& items, const std::stop_token* st) {
    std::vector<RawPut> raw;
    raw.reserve(std::size(items));
    for (const auto& it : items) {
      RawPut r;
      if constexpr (kPriority) {
        r.payload = Codec::encode(it.second);
        r.priority = it.first;
      } else {
        r.payload = Codec::encode(it);
      }
      raw.push_back(std::move(r));
    }
    std::size_t done = 0;
    client_.put(raw, kNever, st, done);
    return done;
  }

  std::vector<Delivery<T>> get_deliveries(std::size_t max, Deadline d, const std::stop_token* st) {
    std::vector<RawItem> raw;
    switch (client_.get(max, raw, d, st, false)) {
      case Status::ok:
        break;
      case Status::unavailable:
        throw Empty();
      case Status::shutdown:
        throw ShutDown();
      case Status::cancelled:
        throw Cancelled();
    }
    std::vector<Delivery<T>> out;
    out.reserve(raw.size());
    for (auto& r : raw) {
      try {
        out.push_back(Delivery<T>{Codec::decode(r.payload), std::move(r.receipt), r.priority});
      } catch (...) {
        release_undecoded(raw, out.size());
        throw;
      }
    }
    return out;
  }
  // A codec failed on raw[from]: that item and the rest go back to the queue (nothing is
  // lost; the caller gets the codec's exception). Those decoded before are delivered.
  void release_undecoded(std::vector<RawItem>& raw, std::size_t from) {
    std::vector<std::string> back;
    for (std::size_t i = from; i < raw.size(); ++i) back.push_back(raw[i].receipt);
    client_.release(back);
  }

  std::optional<std::vector<T>> try_get_many(std::size_t max, Deadline d, const std::stop_token* st,
                                             Status& s) {
    std::vector<RawItem> raw;
    s = client_.get(max, raw, d, st, true);
    if (s != Status::ok) return std::nullopt;
    std::vector<T> out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
      try {
        out.push_back(Codec::decode(raw[i].payload));
      } catch (...) {
        std::vector<RawItem> rest(raw.begin() + static_cast<std::ptrdiff_t>(i), raw.end());
        release_undecoded(rest, 0);
        throw;
      }
    }
    return out;
  }
  std::vector<T> get_many_impl(std::size_t max, Deadline d) {
    if (max == 0) throw std::invalid_argument("weft::redis: get_many(0)");
    Status s{};
    auto v = try_get_many(max, d, nullptr, s);
    if (v) return std::move(*v);
    if (s == Status::shutdown) throw ShutDown();
    throw Empty();
  }
  T get_impl(Deadline d, const std::stop_token* st) {
    Status s{};
    auto v = try_get_many(1, d, st, s);
    if (v) return std::move(v->front());
    switch (s) {
      case Status::shutdown:
        throw ShutDown();
      case Status::cancelled:
        throw Cancelled();
      default:
        throw Empty();
    }
  }
  std::optional<T> try_get_impl(Deadline d, const std::stop_token* st) {
    Status s{};
    auto v = try_get_many(1, d, st, s);
    if (!v) return std::nullopt;
    return std::move(v->front());
  }

  Client client_;
};

}  // namespace detail

// The queue's counters, as one script read them (RedisQueue::stats()).
using Stats = detail::Stats;

// FIFO queue over Redis (Python: queue.Queue).
template <class T, class Codec = DefaultCodec<T>>
requires CodecFor<Codec, T>
using Queue = detail::RedisQueue<T, Codec, detail::Kind::fifo>;

// LIFO queue over Redis (Python: queue.LifoQueue).
template <class T, class Codec = DefaultCodec<T>>
requires CodecFor<Codec, T>
using LifoQueue = detail::RedisQueue<T, Codec, detail::Kind::lifo>;

// Priority queue over Redis: put(priority, item); the smallest priority first, equal
// priorities in put order.
template <class T, class Codec = DefaultCodec<T>>
requires CodecFor<Codec, T>
using PriorityQueue = detail::RedisQueue<T, Codec, detail::Kind::priority>;

}  // namespace weft::redis
