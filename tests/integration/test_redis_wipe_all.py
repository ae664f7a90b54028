#!/usr/bin/env python3
"""
Issue 14's whole run: Redis loses everything in the middle of a run where syncs, incidents and
date edits all flow, and nobody acts.

Two tenants on one stack: "acme" (Syncro, ticketing on with auto-resolve, 50 orgs mapped, an MTP
webhook secret) receives 1,000 incidents (20 % re-fires, 10 % resolves); "wz" (Syncro and
ConnectWise RMM, ten machines in both, the date write-back on for both) has dates edited through
the API. When a share of the tickets exist, both of wz's integrations start a sync (a full one of
Syncro, saved again) and, with the Syncro sync at a given asset page, Redis is lost:
  1. FLUSHALL under the running services (250 tickets, asset page 3);
  2. Redis replaced by an EMPTY server on the same port — stopped, a fresh one started — at
     another moment (400 tickets, asset page 2: more of the full sync after the loss);
  3. FLUSHALL, then every worker (gateway, normalizer, ticket-creator, write-back, fetcher)
     SIGKILLed at random and restarted until the whole restore is done — the configuration
     restore, the inventory rebuild, the held-index scan, the ticket-creator's rescans of Syncro
     (none in flight) — each of which a kill lands inside (Redis wiped again while one of the
     first three was missed; the held-index scan, 10-40 ms on this data, only waited for after
     8 wipes), bounded by a cap that fails the test.
Afterwards, each time: the configuration of both tenants answers as before (tenants,
integrations with their settings, webhook secret, ticketing configuration and org mappings), the
credentials work (the running syncs complete, new ones change nothing), the inventory is the one
before plus the edits, Syncro holds exactly the tickets, comments and status changes the
incidents call for (0 duplicates, 0 lost resolves), and every date was written to each vendor
exactly once.

The code before the loss work answered 404 for every tenant after the wipe (nothing came back).
"""
import random
import subprocess
import time
import unittest

import cwrmm
import ticketing as T
from cwrmm import k
from harness import Stack, free_port, wait_until


# The restore's phases a SIGKILL must land inside, and whose worker they are: the gateway's
# configuration restore and the ticket-creator's held-index scan, seen by their leases; the
# normalizer's inventory rebuild and the ticket-creator's rescans of Syncro, seen by their
# begun-not-done log lines.
RESTORE_PHASES = ("config", "inventory", "held", "rescan")
OWNER = {"config": "gateway", "inventory": "normalizer", "held": "ticket-creator",
         "rescan": "ticket-creator"}
LEASES = {"config": "restore:lock", "held": "ticketing:held_rebuild_lock"}
STATE = "mspsync:{_}:"
STATE_KEYS = ("state:epoch", "state:inventory", "state:inventory_pending", "state:held",
              "state:writeback", "state:traces", "restore:lock", "ticketing:held_rebuild_lock")
CHAOS_CAP_S = 180  # the kills go on until the restore is done; past this the test fails
KILL_EVERY_S = (0.4, 2.0)  # between two random kills (each worker: every ~6 s): the incidents
#                            still flow, so the rescans they cause come while the kills go on


class RedisWipeAllTest(cwrmm.DatesTenant, unittest.TestCase):

    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        # A fixed gateway port: the MTP simulator's URL stays valid across gateway restarts.
        cwrmm.start_dates_stack(self.s, MSPSYNC_HTTP_PORT=free_port())
        self.s.sim_config({"rate_limit": 0})
        self.edits = {}

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    def configuration(self):
        """What the API says of both tenants' configuration (what a restore must bring back)."""
        out = {}
        for tenant, paths in ((T.TENANT, ("", "/integrations/syncro", "/webhooks/mtp",
                                          "/ticketing", "/ticketing/orgs")),
                              (self.TENANT, ("", "/integrations/syncro", "/integrations/cwrmm"))):
            for p in paths:
                st, js, _ = self.api("GET", "/v1/tenants/%s%s" % (tenant, p))
                self.assertEqual(st, 200, (tenant, p, js))
                if p.startswith("/integrations/"):
                    # what was configured, not the state of its syncs (the credentials are
                    # never answered: the syncs after the loss prove them)
                    js = {x: js.get(x) for x in ("integration", "base_url", "account_id",
                                                 "region", "client_id", "enabled", "writeback",
                                                 "features", "sync_interval_minutes",
                                                 "created_at")}
                elif p == "/ticketing":
                    js = js["config"]  # not the ticket-creator's counters
                elif p == "/ticketing/orgs":  # the mappings, not the orgs seen in incidents
                    js = {o["org_id"]: o["mapping"] for o in js["orgs"]}
                out[tenant + p] = js
        return out

    def run_case(self, lose, seed, tickets=250, page=3):
        """Lose Redis with lose(stack) once `tickets` tickets exist and wz's full Syncro sync is
        at asset page `page`, then assert that everything is as before."""
        s = self.s
        secret = T.setup(s, tc_env={"MSPSYNC_GROUP_INSTANCE_ID": "tc-0"})
        self.set_up_synced(300)
        # The journal is asynchronous: the restore can only bring back what reached Kafka.
        wait_until(lambda: sum(1 for l in s.kcat("config", fmt="%k\n") if "ticketing:orgmap" in l)
                   >= 50, 60, "the org mappings journaled")
        config = self.configuration()
        before = self.inventory()
        acme_before = sorted(s.inventory(T.TENANT, "customers"), key=lambda r: r["id"])

        args, log = T.mtp_args(s, secret, count=1000, rate=40, seed=seed)
        mtp = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=s.base_env())
        wait_until(lambda: len(T.sim_tickets(s)) >= tickets or None, 120,
                   "%d tickets created" % tickets)
        # Both of wz's integrations syncing at the moment of the loss.
        s.sim_admin("PUT", "/_sim/config", {"latency_ms": 60})
        st, js, _ = s.api("PUT", "/v1/tenants/%s/integrations/syncro" % self.TENANT,
                          {"base_url": s.sim_base_url("wz-msp"), "api_key": "wz-key-123456",
                           "writeback": self.WB})
        self.assertIn(st, (200, 201), js)  # saved again: a full sync
        job = js["job_id"]
        cw_job = cwrmm.sync_now_cwrmm(s, self.TENANT)
        s.wait_asset_page(self.TENANT, page)
        self.assertNotEqual(s.redis("HGET", k(self.TENANT, "inv:stats"), "asset_complete_job"), job)
        lose(s)
        # Edits keep coming while the configuration and the inventory come back.
        edits = [self.edit(self.machines[3], "2022-04-04", "2030-04-04", check=False),
                 self.edit(self.machines[4], "2022-05-05", "2030-05-05", check=False)]
        s.sim_admin("PUT", "/_sim/config", {"latency_ms": 0})

        T.assert_exact_after_loss(self, s, T.mtp_events(self, mtp, log))
        self.assertEqual([st for st, _ in edits], [202, 202], edits)

        # The syncs running at the loss completed (their status went with Redis: the
        # inventory's end-of-job marks say so). A sync that ended between two wipes of a long
        # chaos had its mark wiped by the next one (inv:stats is not restored: statekeys.c),
        # and nothing runs it again: the normalizer's log of its end-of-type sweep says so then.
        def done(field, j):
            return s.redis("HGET", k(self.TENANT, "inv:stats"), field) == j or \
                '"tenant":"%s","msg":"type=asset job=%s ' % (self.TENANT, j) in \
                s.normalizer.logtext()

        def jobs_done():
            return done("asset_complete_job", job) and done("cwrmm_asset_complete_job", cw_job)
        wait_until(jobs_done, 120, "the syncs running at the loss completed", interval=0.5)
        self.assertIn("inventory rebuilt", s.normalizer.logtext())
        # The full sync lost its cursor mid-way: it went on from a new one at its first page —
        # following the moved cursor, or, when a kill took its fetcher first, run again from
        # the start by the replica that got the job back.
        logs = "".join(f.logtext() for f in s.fetchers)
        self.assertTrue("job=%s expected" % job in logs or
                        logs.count('"msg":"job=%s reason=' % job) >= 2,
                        "job %s neither followed a moved cursor nor started again" % job)
        now = self.configuration()
        self.assertEqual(now, config, [(x, now[x], config[x]) for x in config
                                       if now[x] != config[x]][:2])
        self.assertEqual(sorted(s.inventory(T.TENANT, "customers"), key=lambda r: r["id"]),
                         acme_before)
        self.wait_inventory(self.vendor_time_aside(self.expected(before)),
                            "the inventory as before plus the edits")
        self.wait_written()
        self.resync_changes_nothing(self.expected(before))
        self.assertEqual(s.kcat("dlq"), [])

    def test_flushall_mid_run_with_syncs_incidents_and_edits(self):
        self.run_case(lambda s: s.redis("FLUSHALL"), seed=43)

    def test_empty_server_during_the_full_sync_with_incidents_and_edits(self):
        self.run_case(lambda s: s.replace_redis(), seed=45, tickets=400, page=2)

    def test_sigkills_during_the_restore(self):
        rnd = random.Random(13)
        kills = {}
        landed = {phase: 0 for phase in RESTORE_PHASES}
        since = {}  # service name -> where its current run's log begins
        dead = set()  # lease tokens whose holder was killed (a lease outlives it until expiry)

        def inflight(svc, begin, end):
            """Whether svc's current run logged `begin` after its last `end`."""
            text = svc.logtext()[since.get(svc.name, 0):]
            return text.rfind('"%s"' % begin) > text.rfind('"%s"' % end)

        def phases(s):
            """The restore's phases in progress now (phase -> its evidence), and the markers."""
            vals = s.redis_raw("MGET", *[STATE + x for x in STATE_KEYS]).split("\n")
            v = dict(zip(STATE_KEYS, vals + [""] * len(STATE_KEYS)))
            ph = {p: v[LEASES[p]] for p in LEASES if v[LEASES[p]] and v[LEASES[p]] not in dead}
            for p, (svc, begin, end) in logged(s).items():
                if inflight(svc, begin, end):
                    ph[p] = begin
            return ph, v

        def logged(s):
            return {"inventory": (s.normalizer, "rebuild.start", "rebuild.done"),
                    "rescan": (s.ticket_creator, "ticket.rescan", "ticket.rescanned")}

        def kill(s, svc, ph):
            """SIGKILL svc and restart it; count the phases in progress it was killed inside:
            its lease still held with the same token, or its log begun and not done."""
            svc.kill9()
            for p, ev in ph.items():
                if p in LEASES:
                    if OWNER[p] == svc.name and s.redis_raw("GET", STATE + LEASES[p]).strip() == ev:
                        landed[p] += 1
                        dead.add(ev)
                elif logged(s)[p][0] is svc and inflight(svc, *logged(s)[p][1:]):
                    landed[p] += 1
            since[svc.name] = len(svc.logtext())  # the dead run's log is complete
            s.restart(svc)
            kills[svc.name] = kills.get(svc.name, 0) + 1

        def enough_landed(wipes):
            """Every phase had a kill inside it. The held-index scan reads incidents.held, which
            holds no record in this scenario: it takes 10-40 ms, so a kill lands inside it only
            by luck; after 8 wipes it is only waited for (state:held), like the write-back's and
            the traces' rebuilds (test_redis_wipe_held covers the scan itself: a large topic, a wipe in
            the middle of a release)."""
            return all(landed[p] or (p == "held" and wipes >= 8) for p in landed)

        def chaos(s):
            workers = [s.gateway, s.normalizer, s.ticket_creator, s.write_backs[0], s.fetchers[0]]
            cap = time.time() + CHAOS_CAP_S
            wipes = 0
            while True:
                s.redis("FLUSHALL")
                wiped = time.time()
                wipes += 1
                next_kill = time.time() + rnd.uniform(*KILL_EVERY_S)
                while True:
                    ph, v = phases(s)
                    self.assertLess(time.time(), cap, "the restore not done within %d s of "
                                    "kills: landed=%s kills=%s wipes=%d now=%s %s" % (
                                        CHAOS_CAP_S, landed, kills, wipes, ph, v))
                    epoch = v["state:epoch"]
                    rebuilt = bool(epoch) and v["state:inventory"] == epoch and \
                        not v["state:inventory_pending"] and v["state:held"] == epoch and \
                        v["state:writeback"] == epoch and v["state:traces"] == epoch
                    missed = [p for p in RESTORE_PHASES if p in ph and not landed[p]]
                    if missed:  # a phase no kill landed inside yet: its worker, at once
                        kill(s, next(w for w in workers if w.name == OWNER[missed[0]]), ph)
                    elif rebuilt and (wipes < 8 and not all(landed[p] for p in LEASES) or
                                      not landed["inventory"] or not landed["rescan"] and
                                      time.time() - wiped > 15):
                        break  # done, with a phase missed: wipe again
                    elif rebuilt and "rescan" not in ph and enough_landed(wipes) and \
                            len(kills) == len(workers):
                        print("kills=%s landed inside=%s wipes=%d" % (kills, landed, wipes))
                        return  # every phase done (no rescan in flight), each with a kill
                    elif time.time() >= next_kill:
                        kill(s, rnd.choice(workers), ph)
                        next_kill = time.time() + rnd.uniform(*KILL_EVERY_S)
                    time.sleep(0.005)
        self.run_case(chaos, seed=47)
        self.assertTrue(all(landed[p] for p in landed if p != "held"), landed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
