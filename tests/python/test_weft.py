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

    def test_interrupt_main_without_a_real_signal(self):
        # _thread.interrupt_main() only trips the flag (no EINTR): slicing must catch it.
        import _thread
        q = weft.Queue()

        def later():
            time.sleep(0.1)
            _thread.interrupt_main()

        t = threading.Thread(target=later)
        t.start()
        with self.assertRaises(KeyboardInterrupt):
            q.get(timeout=10)
        t.join()


if __name__ == "__main__":
    unittest.main()
