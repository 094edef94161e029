#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/dsched/mutants.sh: does the explorer find real bugs? Seeds one known bug at a time
# into a copy of weft's include/ and src/, builds the explorer against the copy, and expects
# the named scenarios to report a failure (exit status 1, a FAILURE line with a seed).
#
#   tests/dsched/mutants.sh [--worktree] [NAME...]   (default: every mutant, ~1.5 min each;
#   JOBS=n build jobs, default 1)
#
# The copy is of the committed tree (git HEAD), so that the substitutions stay valid while
# the working tree is being edited; --worktree copies the working tree instead. A crash
# (a seeded bug that corrupts memory) counts as caught when the explorer printed its seed.
#
# Each mutant is: name | file | perl substitution (must change the file) | scenarios.
# Exit status 0 iff every mutant was caught.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=${WEFT_MUTANTS_DIR:-${TMPDIR:-/tmp}/weft_dsched_mutants}
jobs=${JOBS:-1}

mutants=(
  # A sleeping owner is never woken by the claimer: a lost wake-up.
  "wake_no_futex|include/weft/detail/parker.hpp|s/if \(v & kSleeping\) futex_wake_one\(word_\);\n  \}/(void)v;\n  }/|event_13502,lock_mutex"
  # CPython 13502 regression: a claimed waiter re-reads the flag instead of trusting the claim.
  "event_13502|src/event.cpp|s/if \(r.claimed\(\)\) return true;/if (r.claimed()) return is_set();/|event_13502"
  # set() ignores linked waiters on its fast path.
  "event_set_fast|include/weft/event.hpp|s/while \(\(s & kWaiters\) == 0\) \{/while (true) {/|event_13502,event_timed"
  # release() never wakes the front waiter.
  "lock_no_wake|src/lock.cpp|s/claimed = waiters_.claim\(woken, 1\) != 0;/claimed = true;/|lock_mutex"
  # A claim that overrides a decided park (claims a thread that timed out or was cancelled).
  "claim_decided|include/weft/detail/parker.hpp|s/while \(undecided\(v\)\) \{\n      if \(word_.compare_exchange_weak\(v, token \x7c/for (;;) {\n      if (word_.compare_exchange_weak(v, token \x7c/|condition_notify,event_13502"
  # notify(n) wakes one waiter too few.
  "notify_short|src/condition.cpp|s/waiters_.claim\(claimed, n\);/waiters_.claim(claimed, n - 1);/|condition_notify"
  # WordLock::unlock forgets the sleeper.
  "wordlock_no_wake|include/weft/detail/parker.hpp|s/if \(state_.exchange\(0, std::memory_order_release\) == 2\) futex_wake_one\(state_\);/(void)state_.exchange(0, std::memory_order_release);/|queue_mpmc,select_two_queues,lock_mutex"
  # A queue waiter parks without the flag handshake's re-check after link(): misses a push.
  "queue_no_recheck|include/weft/detail/queue_core.hpp|s/\[this\] \{ return \(q_.\*Ready\)\(\); \}/[] { return false; }/|queue_mpmc"
  # release(n) wakes one waiter.
  "sem_claim_one|src/semaphore.cpp|s/claimed \+= waiters_.claim\(woken, n - claimed\);/claimed += waiters_.claim(woken, 1);\n      claimed = n;/|semaphore_release_n"
  # A stop request does not abort the park.
  "stop_ignored|src/parker.cpp|s/void operator\(\)\(\) const noexcept \{ self->cancel\(\); \}/void operator()() const noexcept {}/|cancel_wakes"
  # A timed-out or cancelled waiter leaves its node linked.
  "timeout_leaves_node|include/weft/detail/wait_loop.hpp|s/(claimed node is unlinked\S+\n    )unlink_except\(nodes, N, d.claimed\(\) \? d.index\(\) : N, ops...\);/\${1}if (d.claimed()) unlink_except(nodes, N, d.index(), ops...);/|event_timed,event_cancel"
  # I3 regression: Event::set_slow publishes the flag before claiming its waiters.
  "event_publish_first|src/event.cpp|s/WakeBatch woken;  \/\/ declared first/state().fetch_or(kSet, std::memory_order_release);\n  WakeBatch woken;  \/\/ declared first/|event_lifetime"
  # A wait source keeps announcing waiters after its list emptied (the announcement invariant).
  "source_no_retract|include/weft/detail/wait_source.hpp|s/      list_.remove\(node\);\n      if \(list_.empty\(\)\) announcement_.retract\(\);/      list_.remove(node);/|event_timed,lock_timeout_race"
  # The wait loop parks although a source was found ready while registering (Link::ready,
  # Link::withdrawn).
  "loop_parks_when_ready|include/weft/detail/wait_loop.hpp|s/const bool ready = !link_all\(nodes, book_.position\(\), linked, last, ops...\);/(void)link_all(nodes, book_.position(), linked, last, ops...);\n    const bool ready = false;/|queue_mpmc,select_two_queues,lock_mutex"
  # Wait morphing loses the notified waiters: the release that frees the Lock does not take
  # the wakes Condition::notify() deferred to it.
  "morph_lost|src/lock.cpp|s/      woken.take_from\(deferred_\);\n      state\(\).fetch_and/      state().fetch_and/|condition_notify,condition_lifetime"
  # Lost decision: the owner returns on a claim before the waker's NOTIFIED (I2 broken).
  "no_wait_notified|src/parker.cpp|s/const Deadline d = undecided\(v\) \? deadline : Deadline::never\(\);/if (!undecided(v)) return v;\n    const Deadline d = deadline;/|event_13502,condition_notify"
  # A batch get frees k slots but wakes one putter: the others wait for room that is there.
  "batch_pop_wakes_one|include/weft/detail/ring.hpp|s/notify->claim\(woken, k\);\n    \/\/ Lap by lap, with locals/notify->claim(woken, 1);\n    \/\/ Lap by lap, with locals/|queue_batch_frees_room"
  # A batch put publishes k items but wakes one getter.
  "batch_push_wakes_one|include/weft/detail/ring.hpp|s/notify->claim\(woken, k\);\n      \/\/ Lap by lap: within one/notify->claim(woken, 1);\n      \/\/ Lap by lap: within one/|queue_batch_feeds_getters"
  # A batch's scan checks only the first slot of each run: it claims a slot whose push (or
  # pop) is still in flight.
  "batch_scan_first_only|include/weft/detail/ring.hpp|s/if \(slot\[j\].stamp.load\(std::memory_order_acquire\) != first \+ j\)/if (j == 0 \&\& slot[j].stamp.load(std::memory_order_acquire) != first + j)/|queue_batches"
  # The segment list's hint ("every slot of the head segment was claimed by a push") set
  # without checking the tail: pops claim positions no push has claimed.
  "segment_hint_always|include/weft/detail/segment_list.hpp|s/if \(queued >= n\) \{/if (true) {/|segment_handover,segment_batches"
  # A pop does not wait out a segment hand-over: it claims the hand-over position itself.
  "segment_handover_skip|include/weft/detail/segment_list.hpp|s/if \(offset == Slots\) return Attempt::handover;/(void)0;/|segment_handover,segment_batches"
  # A single pop's fast path (claim_one) does not check that a push has claimed its position.
  "segment_claim_unpushed|include/weft/detail/segment_list.hpp|s/if \(\(head & kMark\) != 0 \x7c\x7c \(tail_/if (true \x7c\x7c (tail_/|segment_batches,segment_shutdown_race"
  # A segment is retired (reset, recycled or freed) when Slots - 1 of its pops are done: the
  # last pop still reads it.
  "segment_retire_early|include/weft/detail/segment_list.hpp|s/\) \+ n ==\n(\s+)Slots\) \{/) + n ==\n\${1}Slots - 1) {/|segment_handover,segment_batches"
  # Leaving the hand-over position drops the closed mark that close() set meanwhile: pushes
  # go on after the shutdown.
  "segment_tail_drops_mark|include/weft/detail/segment_list.hpp|s/tail_.fetch_add\(1, std::memory_order_release\);/tail_.store((tail_.load(std::memory_order_relaxed) \& ~kMark) + 1, std::memory_order_release);/|segment_close_race,segment_shutdown_race"
  # A single push's fast path takes a segment's last slot, so nobody installs the successor.
  "segment_push_fast_last|include/weft/detail/segment_list.hpp|s/offset \+ 1 < Slots \&\&/offset + 1 <= Slots \&\&/|segment_handover,segment_batches"
  # The ring's "empty and open" check loads tail before head: a put and a get between the
  # loads make them match although the ring held an item throughout.
  "ring_empty_tail_first|include/weft/detail/ring.hpp|s/(    const std::uint64_t head = head_.load\(std::memory_order_seq_cst\);\n)(    const std::uint64_t tail = tail_.load\(std::memory_order_seq_cst\);\n)(    return \(tail & mark_\) == 0 && tail == head;)/\${2}\${1}\${3}/|select_hint_ring"
  # The same in the segment list.
  "segment_empty_tail_first|include/weft/detail/segment_list.hpp|s/(    const std::uint64_t head = head_.load\(std::memory_order_seq_cst\);\n)(    const std::uint64_t tail = tail_.load\(std::memory_order_seq_cst\);\n)(    return \(tail & kMark\) == 0 && count)/\${2}\${1}\${3}/|select_hint_segments"
)

# A mutant that does not parse (a '|' inside the substitution must be written \x7c), names
# an unknown file or scenario list, or whose substitution no longer changes the file is a
# failure of the run, never a skip.
worktree=0
selected=()
for a in "$@"; do
  case "$a" in
    --worktree) worktree=1 ;;
    *) selected+=("$a") ;;
  esac
done
caught=0
missed=()
ran=()
for m in "${mutants[@]}"; do
  IFS='|' read -r name file subst scen <<<"$m"
  if ((${#selected[@]})) && [[ ! " ${selected[*]} " == *" $name "* ]]; then continue; fi
  ran+=("$name")
  if [[ ! $scen =~ ^[a-z0-9_]+(,[a-z0-9_]+)*$ || ! -f "$root/$file" ]]; then
    echo "mutant $name: MALFORMED (file '$file', scenarios '$scen')"
    missed+=("$name(malformed)")
    continue
  fi
  dir="$work/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  if ((worktree)); then
    cp -r "$root/include" "$root/src" "$dir/"
  else
    git -C "$root" archive HEAD include src | tar -x -C "$dir"
  fi
  cp "$dir/$file" "$dir/$file.orig"
  if ! perl -0pi -e "$subst" "$dir/$file"; then
    echo "mutant $name: STALE: the substitution is not valid perl"
    missed+=("$name(stale)")
    continue
  fi
  if cmp -s "$dir/$file.orig" "$dir/$file"; then
    echo "mutant $name: STALE: the substitution no longer matches $file (weft changed?)"
    missed+=("$name(stale)")
    continue
  fi
  cmake -S "$root/tests/dsched" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWEFT_DSCHED_WEFT_ROOT="$dir" >"$dir/configure.log" 2>&1
  if ! cmake --build "$dir/build" -j"$jobs" >"$dir/build.log" 2>&1; then
    echo "mutant $name: does not build (see $dir/build.log)"
    missed+=("$name(build)")
    continue
  fi
  set +e
  "$dir/build/weft_dsched" --scenario="$scen" >"$dir/run.log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 1 ]] && grep -q '^FAILURE' "$dir/run.log"; then
    caught=$((caught + 1))
    first=$(grep -m1 -A1 '^FAILURE' "$dir/run.log" | tr -s ' ' | tr '\n' ' ')
    echo "mutant $name: CAUGHT: ${first:0:220}"
    grep -m1 'replay:' "$dir/run.log" | sed 's/^ */    /'
  elif [[ $rc -gt 128 ]] && grep -q '^CRASH' "$dir/run.log"; then
    caught=$((caught + 1))
    echo "mutant $name: CAUGHT (crash): $(grep -m1 '^CRASH' "$dir/run.log")"
    grep -m1 'replay:' "$dir/run.log" | sed 's/^ */    /'
  else
    echo "mutant $name: MISSED (exit $rc, see $dir/run.log)"
    missed+=("$name")
  fi
done
for n in "${selected[@]}"; do
  [[ " ${ran[*]} " == *" $n "* ]] || { echo "mutant $n: no such mutant"; missed+=("$n(unknown)"); }
done
echo "mutants: $caught caught, ${#missed[@]} missed ${missed[*]:-}"
[[ ${#missed[@]} -eq 0 ]]
