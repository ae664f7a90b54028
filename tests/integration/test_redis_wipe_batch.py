#!/usr/bin/env python3
"""A loss of Redis inside a normalizer batch: the batch starts over once the state is back.

The normalizer checks the state (one MGET of the epoch and inventory markers) before a batch; a
FLUSHALL can come after that check, while the batch reads and merges. The inventory's calls are
fenced (inventory.h, nz_inv_fence): each WATCHes the markers before its first read and writes
only in MULTI/EXEC, so a flush inside a batch aborts its writes; the batch then publishes what
its steps before the flush made, waits for the restore and the rebuild, and is processed again
from its first message (log `batch.restart`). Here the flush is sent the moment Redis sees the
normalizer arm its fence for a batch of a 4,000-asset backlog (MONITOR), until one lands inside
a batch. Afterwards the inventory is exact: every asset once, none gone, nothing dead-lettered.
"""
import collections
import socket
import threading

import harness
from harness import StackTest, http, wait_until

FENCE = b'"WATCH" "mspsync:{_}:state:epoch" "mspsync:{_}:state:inventory"'


def resp(*args):
    return b"".join([b"*%d\r\n" % len(args)] +
                    [b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args)])


class FlushOnFence(threading.Thread):
    """Reads MONITOR; at the first fence armed after arm(), sends FLUSHALL on a connection of its
    own (no process start in between: the batch is still merging when it lands)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.mon = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.cmd = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.mon.sendall(resp("MONITOR"))
        self.armed = threading.Event()
        self.fired = threading.Event()
        self.stop = False

    def run(self):
        buf = b""
        try:
            while not self.stop:
                data = self.mon.recv(65536)
                if not data:
                    return
                buf = (buf + data)[-(1 << 20):]
                if self.armed.is_set() and FENCE in buf:
                    self.cmd.sendall(resp("FLUSHALL"))
                    self.cmd.recv(64)
                    self.armed.clear()
                    self.fired.set()
                if not self.armed.is_set():
                    buf = b""
        except OSError:
            return

    def close(self):
        self.stop = True
        for sk in (self.mon, self.cmd):
            try:
                sk.close()
            except OSError:
                pass


def restarts(normalizer):
    return harness.metric_total(normalizer, "mspsync_normalizer_batch_restarts_total")


class RedisWipeBatchTest(StackTest):

    def test_a_flush_inside_a_batch_restarts_it(self):
        s, _ = self.make_backlog(4000)  # the normalizer, started, works in full batches
        wait_until(lambda: s.status("lima")["inventory_pending"], 120,
                   "fetch finished, inventory pending")
        flusher = FlushOnFence(s.redis_port)
        self.addCleanup(flusher.close)
        flusher.start()
        s.restart(s.normalizer)
        for attempt in range(5):
            flusher.armed.set()
            wait_until(flusher.fired.is_set, 120, "a fence armed, then the flush")
            flusher.fired.clear()
            # the gateway restores the configuration and the normalizer rebuilds: serving again
            wait_until(lambda: http("GET", s.normalizer.url("/readyz"))[0] == 200, 120,
                       "the normalizer ready after the restore")
            if restarts(s.normalizer) > 0:
                break
        print("flushes sent: %d, batches restarted: %d" % (attempt + 1, restarts(s.normalizer)))
        self.assertGreater(restarts(s.normalizer), 0, "no flush landed inside a batch")
        self.assertIn("batch.restart", s.normalizer.logtext())
        flusher.close()
        s.wait_normalized(timeout=180)

        def exact():
            assets = s.inventory("lima", "assets", include_gone=1)
            return assets if len(assets) == 4000 else None
        assets = wait_until(exact, 120, "4,000 assets in the inventory")
        self.assertEqual(len({a["id"] for a in assets}), 4000)
        self.assertFalse(any(a["gone"] for a in assets))
        keys = collections.Counter(l.split("\t")[0] for l in s.kcat("assets"))
        self.assertEqual(len(keys), 4000)
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    harness.main()
