"""The verdict of a Python test: check(ok, what) prints one line per check and keeps the failures;
finish(name) prints the summary ('name: ok|FAIL', then 'N passed, M failed') and exits 1 on any failure."""
import sys


class Checks:
    def __init__(self):
        self.passed, self.failed = [], []

    def __call__(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        (self.passed if ok else self.failed).append(what)
        return ok

    def finish(self, name):
        print(f"{name}: {'FAIL' if self.failed else 'ok'}")
        print(f"{len(self.passed)} passed, {len(self.failed)} failed")
        sys.exit(1 if self.failed else 0)
