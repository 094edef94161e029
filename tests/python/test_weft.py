"""weft's own tests for the Python package, beyond CPython's suites (run_cpython_tests.py).

    PYTHONPATH=<build>/python/<X.Y> python3.X tests/python/test_weft.py [-v] [-k PATTERN]

Plain unittest, no pytest. Threads synchronize with events; the only sleeps are in the
signal tests, which must let the main thread block before the signal is sent (their
assertions hold whether or not it had blocked by then).
"""

import gc
import os
import queue
import signal
import sys
import threading
import time
import unittest
import weakref

import weft

QUEUES = (weft.Queue, weft.LifoQueue, weft.PriorityQueue)
ALL_QUEUES = QUEUES + (weft.SimpleQueue,)


def rss_kib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class Names(unittest.TestCase):
    def test_class_names_and_exceptions(self):
        for cls, name in [(weft.Queue, "Queue"), (weft.LifoQueue, "LifoQueue"),
                          (weft.PriorityQueue, "PriorityQueue"), (weft.SimpleQueue, "SimpleQueue")]:
            self.assertEqual(cls.__name__, name)
            self.assertEqual(cls.__module__, "weft")
        self.assertIs(weft.Empty, queue.Empty)
        self.assertIs(weft.Full, queue.Full)
        self.assertIs(weft.BrokenBarrierError, threading.BrokenBarrierError)
        if hasattr(queue, "ShutDown"):
            self.assertIs(weft.ShutDown, queue.ShutDown)
        self.assertTrue(issubclass(weft.LifoQueue, weft.Queue))
        self.assertTrue(issubclass(weft.PriorityQueue, weft.Queue))
        self.assertTrue(issubclass(weft.BoundedSemaphore, weft.Semaphore))
        self.assertEqual(weft.TIMEOUT_MAX, threading.TIMEOUT_MAX)

    def test_generic_alias(self):
        self.assertEqual(weft.Queue[int].__origin__, weft.Queue)
        self.assertEqual(weft.SimpleQueue[str].__args__, (str,))


class QueueSemantics(unittest.TestCase):
    def test_block_is_truthiness(self):
        for cls in ALL_QUEUES:
            q = cls()
            with self.assertRaises(weft.Empty):
                q.get(0)
            with self.assertRaises(weft.Empty):
                q.get([])
            q.put(1, "yes")
            self.assertEqual(q.get([1]), 1)

    def test_timeouts(self):
        for cls in ALL_QUEUES:
            q = cls() if cls is weft.SimpleQueue else cls(1)
            with self.assertRaises(ValueError):
                q.get(timeout=-1)
            with self.assertRaises(OverflowError):
                q.get(timeout=1e300)
            with self.assertRaises(ValueError):
                q.get(timeout=float("nan"))
            if cls is not weft.SimpleQueue:
                q.put(1)
                with self.assertRaises(ValueError):
                    q.put(2, timeout=-0.5)
                with self.assertRaises(OverflowError):
                    q.put(2, timeout=weft.TIMEOUT_MAX * 2)
                t0 = time.monotonic()
                with self.assertRaises(weft.Full):
                    q.put(2, timeout=0.05)
                self.assertGreaterEqual(time.monotonic() - t0, 0.04)

    def test_writable_maxsize_unfinished_shutdown(self):
        q = weft.Queue(1)
        q.put(1)
        self.assertTrue(q.full())
        q.maxsize = 2
        self.assertFalse(q.full())
        q.put(2)
        self.assertEqual(q.unfinished_tasks, 2)
        q.unfinished_tasks = 0
        q.join()  # returns at once
        self.assertFalse(q.is_shutdown)
        q.shutdown(immediate=True)
        self.assertTrue(q.is_shutdown)
        self.assertEqual(q.qsize(), 0)
        with self.assertRaises(weft.ShutDown):
            q.get()
        with self.assertRaises(weft.ShutDown):
            q.put(3)

    def test_maxsize_growth_wakes_blocked_put(self):
        q = weft.Queue(1)
        q.put(0)
        started = threading.Event()
        done = []

        def producer():
            started.set()
            q.put(1)
            done.append(True)

        t = threading.Thread(target=producer)
        t.start()
        started.wait()
        q.maxsize = 2
        t.join(10)
        self.assertEqual(done, [True])

    def test_shutdown_wakes_getters_and_joiners(self):
        empty = weft.Queue()
        pending = weft.Queue()
        pending.put("a")  # unfinished: join blocks until shutdown(immediate) drops it
        results = []
        ready = threading.Barrier(3)

        def getter():
            ready.wait()
            try:
                empty.get()
            except weft.ShutDown:
                results.append("get")

        def joiner():
            ready.wait()
            pending.join()
            results.append("join")

        threads = [threading.Thread(target=getter), threading.Thread(target=joiner)]
        for t in threads:
            t.start()
        ready.wait()
        empty.shutdown()
        pending.shutdown(immediate=True)
        for t in threads:
            t.join(10)
        self.assertEqual(sorted(results), ["get", "join"])
        self.assertEqual(pending.unfinished_tasks, 0)

    def test_task_done_too_often(self):
        q = weft.Queue()
        with self.assertRaises(ValueError):
            q.task_done()
        self.assertEqual(q.unfinished_tasks, 0)


class PriorityComparisons(unittest.TestCase):
    class Item:
        fail = False

        def __init__(self, v):
            self.v = v

        def __lt__(self, other):
            if PriorityComparisons.Item.fail:
                raise ZeroDivisionError("no comparing now")
            return self.v < other.v

    def test_lt_raising_leaves_queue_intact(self):
        Item = self.Item
        q = weft.PriorityQueue()
        for v in [5, 3, 8, 1, 9, 2, 7]:
            q.put(Item(v))
        Item.fail = True
        try:
            with self.assertRaises(ZeroDivisionError):
                q.put(Item(0))
            with self.assertRaises(ZeroDivisionError):
                q.get()
            self.assertEqual(q.qsize(), 7)
            self.assertEqual(q.unfinished_tasks, 7)
        finally:
            Item.fail = False
        self.assertEqual([q.get().v for _ in range(7)], [1, 2, 3, 5, 7, 8, 9])

    def test_order_matches_heapq(self):
        import heapq
        import random
        rnd = random.Random(7)
        data = [(rnd.randrange(20), i) for i in range(500)]
        q = weft.PriorityQueue()
        h = []
        for x in data:
            q.put(x)
            heapq.heappush(h, x)
            if rnd.random() < 0.3:
                self.assertEqual(q.get(), heapq.heappop(h))
        while h:
            self.assertEqual(q.get(), heapq.heappop(h))

    def test_ties_come_out_as_with_heapq(self):
        import heapq
        import random

        class Key:
            def __init__(self, k, ident):
                self.k, self.ident = k, ident

            def __lt__(self, other):
                return self.k < other.k  # equal keys: neither is less

        rnd = random.Random(11)
        items = [Key(rnd.randrange(4), i) for i in range(300)]
        q = weft.PriorityQueue()
        h = []
        for x in items:
            q.put(x)
            heapq.heappush(h, x)
        self.assertEqual([q.get().ident for _ in items], [heapq.heappop(h).ident for _ in items])


class Subclasses(unittest.TestCase):
    def test_list_backed_subclass(self):
        class ListQueue(weft.Queue):
            def _init(self, maxsize):
                self.queue = []

            def _qsize(self):
                return len(self.queue)

            def _put(self, item):
                self.queue.append(item * 10)

            def _get(self):
                return self.queue.pop(0)

        q = ListQueue(2)
        q.put(1)
        q.put(2)
        self.assertTrue(q.full())
        self.assertEqual(q.queue, [10, 20])
        with self.assertRaises(weft.Full):
            q.put(3, block=False)
        self.assertEqual(q.get(), 10)
        self.assertEqual(q.get_many(5), [20])
        self.assertTrue(q.empty())

    def test_super_calls(self):
        seen = []

        class Logged(weft.LifoQueue):
            def _put(self, item):
                seen.append(("put", item))
                super()._put(item)

            def _get(self):
                item = super()._get()
                seen.append(("get", item))
                return item

        q = Logged()
        q.put(1)
        q.put(2)
        self.assertEqual(q.get(), 2)
        self.assertEqual(seen, [("put", 1), ("put", 2), ("get", 2)])
        self.assertEqual(type(q).__name__, "Logged")

    def test_attributes_on_instances(self):
        q = weft.Queue()
        q.note = "hello"
        self.assertEqual(q.note, "hello")


class GarbageAndReferences(unittest.TestCase):
    def test_self_referencing_queues_are_collected(self):
        for cls in ALL_QUEUES:
            q = cls()
            if cls is weft.PriorityQueue:
                q.put((0, q))
                q.put((1, [q]))
            else:
                q.put(q)
                q.put([q])
            wr = weakref.ref(q)
            del q
            gc.collect()
            self.assertIsNone(wr(), cls.__name__)

    def test_weakrefs(self):
        objs = [cls() for cls in ALL_QUEUES] + [
            weft.Lock(), weft.RLock(), weft.Condition(), weft.Semaphore(), weft.BoundedSemaphore(),
            weft.Event(), weft.Barrier(2)]
        for o in objs:
            wr = weakref.ref(o)
            self.assertIs(wr(), o)
        refs = [weakref.ref(o) for o in objs]
        del objs, o, wr
        gc.collect()
        self.assertTrue(all(r() is None for r in refs))

    def test_get_drops_reference(self):
        class C:
            pass

        for cls in ALL_QUEUES:
            q = cls()
            c = C()
            before = sys.getrefcount(c)
            q.put((1, c) if cls is weft.PriorityQueue else c)
            got = q.get()
            del got
            self.assertEqual(sys.getrefcount(c), before, cls.__name__)

    @unittest.skipIf("libasan" in os.environ.get("LD_PRELOAD", ""),
                     "AddressSanitizer's quarantine keeps freed memory resident")
    def test_no_growth_in_a_long_loop(self):
        q = weft.Queue(100)
        s = weft.SimpleQueue()
        p = weft.PriorityQueue()

        def churn(n):
            for i in range(n):
                q.put(object())
                s.put([i])
                p.put((i % 7, i))
                q.get()
                s.get()
                p.get()
                q.task_done()

        churn(20000)
        gc.collect()
        base = rss_kib()
        churn(200000)
        gc.collect()
        grown = rss_kib() - base
        self.assertLess(grown, 4096, f"RSS grew by {grown} KiB over 200k rounds")

    def test_simple_queue_put_reentrant_from_del(self):
        q = weft.SimpleQueue()

        class PutsOnDel:
            def __del__(self):
                q.put("from __del__")

        q.put(PutsOnDel())
        q.put("second")
        q.get()  # the reference is dropped outside the queue's lock: __del__ puts
        self.assertEqual(q.get(), "second")
        self.assertEqual(q.get(), "from __del__")

    def test_simple_queue_put_from_gc_callback(self):
        q = weft.SimpleQueue()

        def cb(phase, info):
            if phase == "start":
                q.put(phase)

        gc.callbacks.append(cb)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(cb)
        self.assertEqual(q.get_nowait(), "start")


class Batches(unittest.TestCase):
    def test_get_many_put_many(self):
        for cls in QUEUES:
            q = cls()
            q.put_many(range(10))
            self.assertEqual(q.unfinished_tasks, 10)
            got = q.get_many(4)
            self.assertEqual(len(got), 4)
            rest = q.get_many(100)
            self.assertEqual(sorted(got + rest), list(range(10)))
            with self.assertRaises(weft.Empty):
                q.get_many(3, block=False)
            with self.assertRaises(weft.Empty):
                q.get_many(3, timeout=0.01)
            with self.assertRaises(ValueError):
                q.get_many(0)

    def test_put_many_full_reports_count(self):
        q = weft.Queue(3)
        with self.assertRaises(weft.Full) as cm:
            q.put_many(["a", "b", "c", "d", "e"], block=False)
        self.assertEqual(cm.exception.count, 3)
        self.assertEqual(q.get_many(10), ["a", "b", "c"])

    def test_put_many_blocks_for_room(self):
        q = weft.Queue(4)
        got = []

        def consumer():
            while len(got) < 100:
                got.extend(q.get_many(7))

        t = threading.Thread(target=consumer)
        t.start()
        q.put_many(list(range(100)))
        t.join(10)
        self.assertEqual(got, list(range(100)))

    def test_get_many_waits_for_the_first_item(self):
        q = weft.Queue()
        out = []
        started = threading.Event()

        def consumer():
            started.set()
            out.append(q.get_many(10, timeout=10))

        t = threading.Thread(target=consumer)
        t.start()
        started.wait()
        q.put("x")
        t.join(10)
        self.assertEqual(out, [["x"]])


class Threading(unittest.TestCase):
    def test_condition_with_threading_lock(self):
        lock = threading.Lock()
        cond = weft.Condition(lock)
        items = []

        def producer():
            with cond:
                items.append(1)
                cond.notify()

        with cond:
            t = threading.Thread(target=producer)
            t.start()
            self.assertTrue(cond.wait_for(lambda: items, timeout=10))
        t.join()
        self.assertFalse(lock.locked())

    def test_threading_condition_with_weft_rlock(self):
        lock = weft.RLock()
        cond = threading.Condition(lock)
        flag = []

        def setter():
            with cond:
                flag.append(1)
                cond.notify_all()

        with cond:
            with cond:  # held twice: wait releases both levels
                t = threading.Thread(target=setter)
                t.start()
                self.assertTrue(cond.wait_for(lambda: flag, timeout=10))
                self.assertEqual(lock._recursion_count(), 2)
        t.join()

    def test_condition_notify_counts(self):
        cond = weft.Condition(weft.Lock())
        woken = []
        n = 4
        waiting = weft.Semaphore(0)

        def waiter(i):
            with cond:
                waiting.release()
                if cond.wait(timeout=10):
                    woken.append(i)

        threads = [threading.Thread(target=waiter, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for _ in range(n):
            waiting.acquire()
        with cond:
            self.assertIn(", 4)>", repr(cond))
            cond.notify(2)
        with cond:
            cond.notify_all()
        for t in threads:
            t.join(10)
        self.assertEqual(len(woken), n)

    def test_barrier_action_error_breaks(self):
        def action():
            raise KeyError("boom")

        b = weft.Barrier(1, action=action)
        with self.assertRaises(KeyError):
            b.wait()
        self.assertTrue(b.broken)
        with self.assertRaises(threading.BrokenBarrierError):
            b.wait()
        b.reset()
        self.assertFalse(b.broken)

    def test_at_fork_reinit(self):
        lock = weft.Lock()
        lock.acquire()
        lock._at_fork_reinit()
        self.assertFalse(lock.locked())
        ev = weft.Event()
        ev.set()
        ev._at_fork_reinit()
        self.assertTrue(ev.is_set())
        self.assertTrue(ev.wait(0))

    def test_reprs(self):
        self.assertRegex(repr(weft.Lock()), r"^<unlocked weft\.Lock object at 0x[0-9a-f]+>$")
        r = weft.RLock()
        r.acquire()
        self.assertRegex(repr(r), r"^<locked weft\.RLock object owner=\d+ count=1 at 0x")
        self.assertRegex(repr(weft.Event()), r"^<weft\.Event at 0x[0-9a-f]+: unset>$")
        self.assertRegex(repr(weft.Semaphore(2)), r"^<weft\.Semaphore at 0x[0-9a-f]+: value=2>$")
        self.assertRegex(repr(weft.BoundedSemaphore(2)), r": value=2/2>$")
        self.assertRegex(repr(weft.Barrier(3)), r"^<weft\.Barrier at 0x[0-9a-f]+: waiters=0/3>$")

    def test_many_threads_queue_stress(self):
        q = weft.Queue(8)
        n, producers = 20000, 4
        total = []
        lock = weft.Lock()

        def produce(k):
            for i in range(k, n, producers):
                q.put(i)

        def consume():
            s = 0
            while True:
                x = q.get()
                if x is None:
                    break
                s += x
                q.task_done()
            with lock:
                total.append(s)
            q.task_done()

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
        threads += [threading.Thread(target=consume) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads[:producers]:
            t.join()
        q.join()
        for _ in range(3):
            q.put(None)
        for t in threads[producers:]:
            t.join()
        self.assertEqual(sum(total), n * (n - 1) // 2)


@unittest.skipUnless(threading.current_thread() is threading.main_thread(), "needs main thread")
class Signals(unittest.TestCase):
    """A signal handler runs while the main thread is blocked; a raising one ends the wait,
    a returning one lets it go on to its original deadline; nothing is lost."""

    def setUp(self):
        self.old = signal.getsignal(signal.SIGUSR1)

    def tearDown(self):
        signal.signal(signal.SIGUSR1, self.old)

    def interrupt_soon(self, delays=(0.1,), sig=signal.SIGINT):
        def fire():
            for d in delays:
                time.sleep(d)
                os.kill(os.getpid(), sig)

        t = threading.Thread(target=fire)
        t.start()
        return t

    def assert_interrupted(self, call, *args):
        t = self.interrupt_soon()
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            call(*args)
        elapsed = time.monotonic() - t0
        t.join()
        self.assertLess(elapsed, 5.0)

    def test_ctrl_c_during_blocking_calls(self):
        q = weft.Queue(1)
        self.assert_interrupted(q.get)
        self.assert_interrupted(q.get_many, 3)
        q.put("kept")
        self.assert_interrupted(q.put, "lost?")
        self.assertEqual(q.qsize(), 1)
        self.assert_interrupted(q.join)
        self.assertEqual(q.get(), "kept")  # nothing lost, nothing added
        self.assert_interrupted(weft.SimpleQueue().get)
        lock = weft.Lock()
        lock.acquire()
        self.assert_interrupted(lock.acquire)
        rlock = weft.RLock()
        t = threading.Thread(target=rlock.acquire)
        t.start()
        t.join()
        self.assert_interrupted(rlock.acquire)
        self.assert_interrupted(weft.Event().wait)
        self.assert_interrupted(weft.Semaphore(0).acquire)
        self.assert_interrupted(weft.Barrier(2).wait)
        cond = weft.Condition()
        with cond:
            self.assert_interrupted(cond.wait)
            self.assertTrue(cond._is_owned())  # the lock is held again after the interruption

    def test_interrupted_condition_wait_leaves_the_waiters_intact(self):
        # B waits, then the main thread waits and is interrupted: it must leave the waiter
        # list (only B remains) and hold the lock again, and a notify must still reach B.
        cond = weft.Condition(weft.Lock())
        b_woken = []
        b_waiting = weft.Event()

        def b():
            with cond:
                b_waiting.set()
                b_woken.append(cond.wait(timeout=10))

        tb = threading.Thread(target=b)
        tb.start()
        b_waiting.wait()
        t = self.interrupt_soon()
        with cond:
            with self.assertRaises(KeyboardInterrupt):
                cond.wait()
            self.assertTrue(repr(cond).endswith(", 1)>"), repr(cond))
            cond.notify()
        tb.join(10)
        t.join()
        self.assertEqual(b_woken, [True])

    def test_returning_handler_keeps_the_deadline(self):
        calls = []
        signal.signal(signal.SIGUSR1, lambda *a: calls.append(1))
        q = weft.Queue()
        t = self.interrupt_soon(delays=(0.25, 0.25, 0.25), sig=signal.SIGUSR1)
        t0 = time.monotonic()
        with self.assertRaises(weft.Empty):
            q.get(timeout=1.0)
        elapsed = time.monotonic() - t0
        t.join()
        self.assertEqual(len(calls), 3)
        self.assertGreaterEqual(elapsed, 0.95)
        self.assertLess(elapsed, 1.6)  # a restarted wait would take >= 1.75 s

    def test_handler_puts_into_the_queue_being_waited_on(self):
        q = weft.SimpleQueue()
        signal.signal(signal.SIGUSR1, lambda *a: q.put("from handler"))
        t = self.interrupt_soon(sig=signal.SIGUSR1)
        self.assertEqual(q.get(timeout=10), "from handler")
        t.join()

    def test_interrupt_main_runs_when_the_wait_ends(self):
        # _thread.interrupt_main() schedules the handler without sending a signal, so nothing
        # interrupts the sleep: as with CPython's own locks, the handler runs when the wait
        # ends, and its exception wins over the timeout.
        import _thread
        q = weft.Queue()
        scheduled = threading.Event()

        def later():
            wait_until_blocked(threading.main_thread().native_id)
            _thread.interrupt_main()
            scheduled.set()

        t = threading.Thread(target=later)
        t.start()
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            q.get(timeout=0.5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        t.join()
        self.assertTrue(scheduled.is_set())

    def test_alarm_handlers_run_promptly_and_the_deadline_holds(self):
        # SIGALRM every 0.1 s during a 0.6 s wait: the handler runs while the main thread is
        # blocked (several times, not once at the end), returns, and the wait still ends at
        # its original deadline with its own result (a restarted wait would never end).
        old = signal.signal(signal.SIGALRM, lambda *a: calls.append(time.monotonic()))
        lock = weft.Lock()
        lock.acquire()
        sem = weft.Semaphore(0)
        cond = weft.Condition()
        calls = []
        waits = [
            ("Event.wait", lambda: weft.Event().wait(0.6), False),
            ("Lock.acquire", lambda: lock.acquire(timeout=0.6), False),
            ("Semaphore.acquire", lambda: sem.acquire(timeout=0.6), False),
            ("Condition.wait", lambda: cond.wait(0.6), False),
            ("Queue.get", lambda: weft.Queue().get(timeout=0.6), weft.Empty),
            ("Queue.put", lambda: full_queue().put(2, timeout=0.6), weft.Full),
            ("SimpleQueue.get", lambda: weft.SimpleQueue().get(timeout=0.6), weft.Empty),
            ("Barrier.wait", lambda: weft.Barrier(2).wait(0.6), threading.BrokenBarrierError),
        ]

        def full_queue():
            q = weft.Queue(1)
            q.put(1)
            return q

        try:
            for name, call, expected in waits:
                with self.subTest(name):
                    calls.clear()
                    with cond:
                        t0 = time.monotonic()
                        signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
                        try:
                            if expected is False:
                                self.assertIs(call(), False)
                            else:
                                with self.assertRaises(expected):
                                    call()
                        finally:
                            signal.setitimer(signal.ITIMER_REAL, 0)
                        elapsed = time.monotonic() - t0
                    self.assertGreaterEqual(elapsed, 0.55)
                    self.assertLess(elapsed, 2.0)
                    during = [c for c in calls if c < t0 + 0.55]
                    self.assertGreaterEqual(len(during), 2, (name, calls, t0))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def wait_until_blocked(tid, timeout=10.0):
    """Returns once thread `tid` sleeps in a futex system call (Linux: /proc/self/task/<tid>/
    syscall), True; where that cannot be read, after 0.2 s, False. A futex may also be the
    GIL's: callers that must know the thread is in a weft wait use main_thread_in_call."""
    number = {"x86_64": "202 ", "aarch64": "98 "}.get(os.uname().machine)
    path = f"/proc/self/task/{tid}/syscall"
    end = time.monotonic() + timeout
    while number and time.monotonic() < end:
        try:
            with open(path) as f:
                if f.read().startswith(number):
                    return True
        except OSError:
            break
        time.sleep(0.001)
    time.sleep(0.2)
    return False


def main_thread_in_call(entered):
    """For a helper thread: returns once the main thread, which appends to `entered` just
    before a blocking weft call, sleeps inside it. With a long switch interval (the callers
    set one) the main thread gives the GIL up only by blocking, so once the helper runs after
    the append, the main thread is in the call, and in a futex there only in weft's wait."""
    while not entered:
        time.sleep(0.001)
    wait_until_blocked(threading.main_thread().native_id)


@unittest.skipUnless(threading.current_thread() is threading.main_thread(), "needs main thread")
class MainThreadEvent(unittest.TestCase):
    """A main-thread Event.wait returns True for a set() that came while it waited, even if a
    clear() followed at once, as threading.Event.wait does: it stays registered for the whole
    wait (no slices), and while a signal handler runs (when it is not) set() is counted."""

    def setUp(self):
        self.interval = sys.getswitchinterval()
        # The helper threads below run only when the main thread gives the GIL up in a wait.
        sys.setswitchinterval(30.0)

    def tearDown(self):
        sys.setswitchinterval(self.interval)

    def test_set_then_clear_while_the_main_thread_waits(self):
        # The helper holds the GIL for 0.1 s (a slicing waiter would have ended a slice and
        # be waiting for the GIL, out of the event's list), then sets and clears.
        for _ in range(5):
            ev = weft.Event()
            entered = []

            def helper():
                main_thread_in_call(entered)
                end = time.monotonic() + 0.1
                while time.monotonic() < end:
                    pass
                ev.set()
                ev.clear()

            t = threading.Thread(target=helper)
            t.start()
            entered.append(1)
            self.assertIs(ev.wait(timeout=5), True)
            t.join()
            self.assertFalse(ev.is_set())

    def test_set_then_clear_while_a_handler_runs(self):
        main = threading.main_thread()
        ev = weft.Event()
        go, done = threading.Event(), threading.Event()
        ran, entered = [], []

        def handler(*a):
            ran.append(1)
            if len(ran) == 1:
                go.set()
                done.wait(10)  # the helper sets and clears `ev` meanwhile

        def helper():
            main_thread_in_call(entered)
            # Again until it lands: one sent before the main thread sleeps is handled late.
            while True:
                signal.pthread_kill(main.ident, signal.SIGUSR1)
                if go.wait(0.5):
                    break
            ev.set()
            ev.clear()
            done.set()

        old = signal.signal(signal.SIGUSR1, handler)
        try:
            t = threading.Thread(target=helper)
            t.start()
            entered.append(1)
            self.assertIs(ev.wait(timeout=10), True)
            t.join()
        finally:
            signal.signal(signal.SIGUSR1, old)
        self.assertTrue(ran)


class Cancellation(unittest.TestCase):
    """cancel=token ends a blocked call with weft.Cancelled, having changed nothing."""

    def blocked_calls(self):
        """(name, call(token), check) for each kind of blocking call; check() asserts that the
        object is as it was."""
        q = weft.Queue(1)
        q.put("kept")
        empty = weft.Queue()
        lq = weft.LifoQueue()
        pq = weft.PriorityQueue()
        sq = weft.SimpleQueue()
        lock = weft.Lock()
        lock.acquire()
        rlock = weft.RLock()
        held, leave = threading.Event(), threading.Event()

        def holder():  # alive while the test runs: a thread's ident is reused once it exits
            with rlock:
                held.set()
                leave.wait()

        h = threading.Thread(target=holder)
        h.start()
        held.wait()
        self.addCleanup(h.join)
        self.addCleanup(leave.set)
        sem = weft.Semaphore(0)
        ev = weft.Event()
        cond = weft.Condition(weft.Lock())
        barrier = weft.Barrier(2)

        def cond_wait(token):
            with cond:
                try:
                    return cond.wait(cancel=token)
                finally:
                    self.assertTrue(cond._is_owned())

        def cond_wait_for(token):
            with cond:
                return cond.wait_for(lambda: False, timeout=30, cancel=token)

        def check_q():
            self.assertEqual(q.qsize(), 1)
            self.assertEqual(q.unfinished_tasks, 1)

        def check_barrier():
            self.assertEqual(barrier.n_waiting, 0)
            self.assertFalse(barrier.broken)

        return [
            ("Queue.get", lambda c: empty.get(cancel=c), lambda: self.assertEqual(empty.qsize(), 0)),
            ("Queue.get timeout", lambda c: empty.get(timeout=30, cancel=c), lambda: None),
            ("LifoQueue.get", lambda c: lq.get(cancel=c), lambda: None),
            ("PriorityQueue.get", lambda c: pq.get(cancel=c), lambda: None),
            ("Queue.get_many", lambda c: empty.get_many(5, cancel=c), lambda: None),
            ("Queue.put", lambda c: q.put("no", cancel=c), check_q),
            ("Queue.put_many", lambda c: q.put_many(["no"], cancel=c), check_q),
            ("Queue.join", lambda c: q.join(cancel=c), check_q),
            ("SimpleQueue.get", lambda c: sq.get(cancel=c), lambda: self.assertTrue(sq.empty())),
            ("Lock.acquire", lambda c: lock.acquire(cancel=c), lambda: self.assertTrue(lock.locked())),
            ("Lock.acquire timeout", lambda c: lock.acquire(timeout=30, cancel=c), lambda: None),
            ("RLock.acquire", lambda c: rlock.acquire(cancel=c),
             lambda: self.assertFalse(rlock._is_owned())),
            ("Semaphore.acquire", lambda c: sem.acquire(cancel=c),
             lambda: self.assertEqual(sem._value, 0)),
            ("Event.wait", lambda c: ev.wait(cancel=c), lambda: self.assertFalse(ev.is_set())),
            ("Condition.wait", cond_wait, lambda: self.assertTrue(repr(cond).endswith(", 0)>"))),
            ("Condition.wait_for", cond_wait_for, lambda: None),
            ("Barrier.wait", lambda c: barrier.wait(cancel=c), check_barrier),
        ]

    def test_cancel_ends_blocked_calls_in_other_threads(self):
        for name, call, check in self.blocked_calls():
            with self.subTest(name):
                token = weft.CancelToken()
                out = []
                started = threading.Event()

                def run():
                    started.set()
                    try:
                        out.append(call(token))
                    except weft.Cancelled as e:
                        out.append(e)

                t = threading.Thread(target=run)
                t.start()
                started.wait()
                wait_until_blocked(t.native_id)
                token.cancel()
                t.join(10)
                self.assertFalse(t.is_alive())
                self.assertEqual(len(out), 1)
                self.assertIsInstance(out[0], weft.Cancelled)
                check()

    @unittest.skipUnless(threading.current_thread() is threading.main_thread(), "main thread")
    def test_cancel_ends_blocked_calls_in_the_main_thread(self):
        # The main thread's waits also carry the signal machinery's stop source.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(30.0)  # see main_thread_in_call
        self.addCleanup(sys.setswitchinterval, interval)
        for name, call, check in self.blocked_calls():
            with self.subTest(name):
                token = weft.CancelToken()
                entered = []

                def canceller():
                    main_thread_in_call(entered)
                    token.cancel()

                t = threading.Thread(target=canceller)
                t.start()
                with self.assertRaises(weft.Cancelled):
                    entered.append(1)
                    call(token)
                t.join()
                check()

    def test_cancelled_token_fails_calls_that_would_wait(self):
        token = weft.CancelToken()
        token.cancel()
        token.cancel()  # idempotent
        self.assertTrue(token.cancelled)
        for name, call, check in self.blocked_calls():
            with self.subTest(name):
                t0 = time.monotonic()
                with self.assertRaises(weft.Cancelled):
                    call(token)
                self.assertLess(time.monotonic() - t0, 5)
                check()
        # A call that needs no wait completes.
        q = weft.Queue()
        q.put(1, cancel=token)
        self.assertEqual(q.get(cancel=token), 1)
        lock = weft.Lock()
        self.assertTrue(lock.acquire(cancel=token))
        ev = weft.Event()
        ev.set()
        self.assertTrue(ev.wait(cancel=token))

    def test_put_many_reports_count_when_cancelled(self):
        q = weft.Queue(2)
        token = weft.CancelToken()
        out = []

        def run():
            try:
                q.put_many("abcde", cancel=token)
            except weft.Cancelled as e:
                out.append(e.count)

        t = threading.Thread(target=run)
        t.start()
        wait_until_blocked(t.native_id)
        token.cancel()
        t.join(10)
        self.assertEqual(out, [2])
        self.assertEqual(q.get_many(10), ["a", "b"])

    def test_one_token_many_waiters_and_the_rest_unaffected(self):
        token, other = weft.CancelToken(), weft.CancelToken()
        q = weft.Queue()
        results = []
        lock = threading.Lock()

        def run(tok):
            try:
                r = q.get(timeout=30, cancel=tok)
            except weft.Cancelled:
                r = "cancelled"
            with lock:
                results.append(r)

        threads = [threading.Thread(target=run, args=(token,)) for _ in range(4)]
        threads.append(threading.Thread(target=run, args=(other,)))
        for t in threads:
            t.start()
        for t in threads:
            wait_until_blocked(t.native_id)
        token.cancel()
        for t in threads[:4]:
            t.join(10)
        q.put("item")  # reaches the waiter whose token was not cancelled
        threads[4].join(10)
        self.assertEqual(sorted(results), ["cancelled"] * 4 + ["item"])
        self.assertFalse(other.cancelled)

    def test_type_errors_and_repr(self):
        with self.assertRaises(TypeError):
            weft.Queue().get(cancel=object())
        with self.assertRaises(TypeError):
            weft.Lock().acquire(cancel="x")
        with self.assertRaises(TypeError):
            weft.CancelToken(1)
        token = weft.CancelToken()
        self.assertIn("active", repr(token))
        self.assertIs(weakref.ref(token)(), token)
        token.cancel()
        self.assertIn("cancelled", repr(token))
        self.assertTrue(issubclass(weft.Cancelled, Exception))
        # None means no token.
        self.assertTrue(weft.Lock().acquire(cancel=None))


if __name__ == "__main__":
    unittest.main()
