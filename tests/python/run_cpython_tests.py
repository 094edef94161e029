"""CPython's own queue and lock test suites, pointed at weft.

    python3.X tests/python/run_cpython_tests.py [--suite queue|locks|all] [-v] [-k PATTERN]

Imports the running interpreter's own Lib/test/test_queue.py and Lib/test/lock_tests.py
(unedited) and runs their test classes with weft substituted: test_queue's mixins take the
module under test as the class attribute ``queue``; lock_tests' classes take factories
(``locktype``, ``eventtype``, ``condtype``, ``semtype``, ``barriertype``). Run with
PYTHONPATH pointing at a built weft package (scripts/test.sh and ctest do this).

A test is skipped only where it pokes a CPython-private attribute; SKIPS below names each
one with its reason, and the summary line repeats them. Exit status 0 when everything ran
passed.
"""

import argparse
import sys
import unittest

import weft
from test import lock_tests, test_queue

# test id suffix -> why it cannot apply to weft.
SKIPS = {
    "EventTests.test_at_fork_reinit": (
        "reads Event._cond, the threading.Condition inside CPython's pure-Python Event; "
        "weft.Event has no Condition (its _at_fork_reinit is tested in tests/python/test_weft.py)"
    ),
}


def _with_skips(cls, family):
    for key, reason in SKIPS.items():
        fam, name = key.split(".")
        if fam == family and hasattr(cls, name):
            setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
    return cls


# --- test_queue: the module under test is `queue` ------------------------------------------


class WeftQueueTest(test_queue.QueueTest, unittest.TestCase):
    queue = weft


class WeftLifoQueueTest(test_queue.LifoQueueTest, unittest.TestCase):
    queue = weft


class WeftPriorityQueueTest(test_queue.PriorityQueueTest, unittest.TestCase):
    queue = weft


class WeftFailingQueueTest(test_queue.FailingQueueTest, unittest.TestCase):
    queue = weft


# CSimpleQueueTest adds test_is_default and test_reentrancy to the shared SimpleQueue tests;
# its setUp takes self.queue.SimpleQueue.
class WeftSimpleQueueTest(test_queue.CSimpleQueueTest):
    queue = weft


# --- lock_tests: factories ----------------------------------------------------------------


class WeftLockTests(lock_tests.LockTests):
    locktype = staticmethod(weft.Lock)


class WeftRLockTests(lock_tests.RLockTests):
    locktype = staticmethod(weft.RLock)


@lambda cls: _with_skips(cls, "EventTests")
class WeftEventTests(lock_tests.EventTests):
    eventtype = staticmethod(weft.Event)


class WeftConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(weft.Condition)


class WeftSemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(weft.Semaphore)


class WeftBoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(weft.BoundedSemaphore)


class WeftBarrierTests(lock_tests.BarrierTests):
    barriertype = staticmethod(weft.Barrier)


SUITES = {
    "queue": [WeftQueueTest, WeftLifoQueueTest, WeftPriorityQueueTest, WeftFailingQueueTest,
              WeftSimpleQueueTest],
    "locks": [WeftLockTests, WeftRLockTests, WeftEventTests, WeftConditionTests,
              WeftSemaphoreTests, WeftBoundedSemaphoreTests, WeftBarrierTests],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["queue", "locks", "all"], default="all")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", dest="patterns", action="append", default=None,
                    help="only tests matching this substring pattern (unittest -k)")
    args = ap.parse_args()

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in args.patterns]
    names = ["queue", "locks"] if args.suite == "all" else [args.suite]
    suite = unittest.TestSuite()
    for name in names:
        for cls in SUITES[name]:
            suite.addTests(loader.loadTestsFromTestCase(cls))
    print(f"weft {weft.__file__} under Python {sys.version.split()[0]}; "
          f"CPython's tests from {test_queue.__file__} and {lock_tests.__file__}", flush=True)
    result = unittest.TextTestRunner(verbosity=2 if args.verbose else 1).run(suite)
    run = result.testsRun
    skipped = len(result.skipped)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"CPython suites ({args.suite}) on Python {sys.version_info[0]}.{sys.version_info[1]}: "
          f"{run} run, {run - skipped - failed} passed, {failed} failed, {skipped} skipped")
    for test, reason in result.skipped:
        print(f"  skipped {test.id()}: {reason}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
