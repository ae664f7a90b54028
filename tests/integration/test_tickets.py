"""
MTP incidents become Syncro tickets: 1,000 incidents over 50 orgs (20 % re-fires, 10 % resolves)
give exactly the expected tickets, comments and status changes, with zero duplicates; an unmapped
org's incident is dead-lettered with the reason, shows in the status, and is ticketed once mapped
and replayed.
"""

import time

import ticketing as T
from harness import StackTest, main, wait_until


class TicketsTest(StackTest):
    def test_thousand_incidents_become_exactly_the_expected_tickets(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s)
        summary, events = T.run_mtp(s, secret, count=1000, rate=200, seed=11)
        self.assertEqual(summary["accepted"], 1000, summary)
        exp = T.expected(events)
        kinds = [e["kind"] for e in events]
        self.assertGreater(kinds.count("refire"), 150)
        self.assertGreater(kinds.count("resolve"), 60)
        T.wait_exact(s, exp, timeout=240)
        T.wait_drained(s)
        # Still exact once everything is committed: nothing arrived late, nothing twice.
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        stats = s.sim_stats()
        acct = stats.get("accounts", {}).get(T.SUB, stats)
        tickets = T.sim_tickets(s)
        self.assertEqual(len(tickets), len(exp))
        # The first comment carries the incident details and is hidden.
        first = sorted(tickets[0]["comments"], key=lambda c: c["id"])[0]
        self.assertTrue(first["hidden"])
        self.assertIn("mspsync-incident: ", first["body"])
        self.assertEqual(tickets[0]["priority"], "2 Normal")
        self.assertTrue(tickets[0]["due_date"])
        st, js, _ = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)
        self.assertEqual(st, 200)
        self.assertEqual(int(js["status"]["tickets_created"]), len(exp), js["status"])
        # Every incident's trace tells the same story as the simulator (issue 13 item 4).
        started = time.monotonic()
        last = [None]

        def traces_match():
            last[0] = T.trace_diffs(s, events, tickets)
            return not last[0]
        try:
            wait_until(traces_match, 60, "every trace matches the simulator", interval=1.0)
        except AssertionError:
            raise AssertionError("%d differences, first 20: %s" % (len(last[0]), last[0][:20]))
        print("traces of %d incidents checked in %.1f s" % (
            len({e["incident_id"] for e in events}), time.monotonic() - started))
        print("tickets=%d comments=%d resolved=%d sim=%s" % (
            len(exp), sum(e["comments"] for e in exp.values()),
            sum(e["changes"].count("Resolved") for e in exp.values()), acct))

    def test_long_non_ascii_title_keeps_its_subject_cut_on_a_character_boundary(self):
        """Syncro takes 250 bytes of subject: a cut inside a character used to drop the subject
        (jansson refuses invalid UTF-8), Syncro answered 422 and the incident was dead-lettered."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=1)
        # "<title> - WS-01": byte 250 falls inside é (2 bytes), € (3), 中 (3) and 😀 (4) in
        # turn, and one title fits exactly.
        titles = {"latin1": "a" * 241 + "\u00e9" * 10, "euro": "a" * 240 + "\u20ac" * 5,
                  "cjk": "ab" * 120 + "\u4e2d" * 5, "emoji": "a" * 241 + "\U0001F600" * 4,
                  "exact": "a" * 232 + "\u20ac" * 3 + "e"}
        want = {}
        for i, (name, title) in enumerate(sorted(titles.items())):
            inc = {"id": "inc-" + name, "org_id": "org-0001", "org_name": "Org One",
                   "alert_type": "device_offline", "severity": "high", "status": "open",
                   "subject": "WS-01", "title": title,
                   "occurred_at": "2026-11-23T10:%02d:00.000Z" % i}
            st, js, _ = T.post_incident(s, secret, inc)
            self.assertEqual(st, 202, js)
            want["inc-" + name] = T.ticket_subject(title, "WS-01", "org-0001")
        self.assertEqual(len(want["inc-exact"].encode()), 250)
        self.assertTrue(all(len(v.encode()) < 250 for k, v in want.items() if k != "inc-exact"))

        def subjects():
            return {T.INCIDENT_RE.search(sorted(t["comments"], key=lambda c: c["id"])[0]["body"])
                    .group(1): t["subject"] for t in T.sim_tickets(s)}
        got = wait_until(lambda: len(subjects()) == len(want) and subjects(), 60,
                         "a ticket per incident")
        self.assertEqual(got, want)
        T.wait_drained(s)
        self.assertEqual(s.kcat("dlq"), [])
        self.assertEqual(subjects(), want)

    def test_long_non_ascii_status_is_kept_whole_and_the_ticket_resolves(self):
        """A rule status of 79 characters is 149 bytes: the ticket-creator's record of the status
        it set was cut to 127 bytes, never matched Syncro's again, and the resolve took the
        ticket for changed by a technician and left it open."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        status = "En cours " + "\u00e9" * 70
        rule = dict(T.DEFAULT_CONFIG["rules"]["*"], status=status)
        cfg = dict(T.DEFAULT_CONFIG, rules={"*": rule})
        secret = T.setup(s, orgs=1, config=cfg,
                         ticket_statuses=["New", "In Progress", "Resolved", status])
        inc = {"id": "inc-s", "org_id": "org-0001", "org_name": "Org One", "alert_type": "x",
               "severity": "high", "status": "open", "subject": "WS-01", "title": "Alert",
               "occurred_at": "2026-11-23T10:00:00.000Z"}
        self.assertEqual(T.post_incident(s, secret, inc)[0], 202)
        t = wait_until(lambda: T.sim_tickets(s), 60, "the ticket")[0]
        self.assertEqual(t["status"], status)
        inc.update(status="resolved", occurred_at="2026-11-23T10:05:00.000Z")
        self.assertEqual(T.post_incident(s, secret, inc)[0], 202)
        T.wait_drained(s)
        t = T.sim_tickets(s)[0]
        self.assertEqual(t["status"], "Resolved", [c["body"] for c in t["comments"]])
        self.assertEqual(len(t["comments"]), 1)
        self.assertEqual(s.kcat("dlq"), [])

    def test_thousand_incidents_with_long_utf8_titles_all_become_tickets(self):
        """The issue's must-show: titles of 240..260 bytes mixing Latin-1, €, CJK and emoji give
        exactly the expected tickets, each subject the 250-byte character-boundary cut of
        "<title> - <subject>", and nothing is dead-lettered."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s)
        started = time.monotonic()
        summary, events = T.run_mtp(s, secret, count=1000, rate=200, seed=12, titles="utf8")
        self.assertEqual(summary["accepted"], 1000, summary)
        exp = T.expected(events)
        # The cut falls inside a multi-byte character for a good share of the tickets.
        inside = [e for e in exp.values() if len(e["subject"].encode()) < T.SUBJECT_MAX]
        self.assertGreater(len(inside), 100, len(exp))
        T.wait_exact(s, exp, timeout=240)
        T.wait_drained(s)
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        self.assertEqual(len(T.sim_tickets(s)), len(exp))
        print("utf8 titles: tickets=%d cut-inside-a-character=%d dlq=0 in %.1f s" % (
            len(exp), len(inside), time.monotonic() - started))

    def test_create_answered_after_the_timeout_is_found_not_made_twice(self):
        """Syncro makes the ticket but answers after our timeout (3 s here): the create's outcome
        is unknown, and sending it again made a second ticket (seen under ASan on a loaded
        machine). Now the ticket-creator looks for its marker first and finds the ticket."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=1)
        # The next Syncro request (the ticket POST: nothing else calls the simulator now) is
        # handled at once and answered 5 s later.
        s.sim_config({"hang_next": 1, "hang_ms": 5000})
        inc = {"id": "slow-1", "org_id": "org-0001", "org_name": "Org One", "alert_type": "device_offline",
               "severity": "high", "status": "open", "subject": "WS-01", "title": "Device offline",
               "description": "WS-01 stopped reporting.", "occurred_at": "2026-12-06T06:00:00Z"}
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        wait_until(lambda: "syncro.retry" in s.ticket_creator.logtext(), 60, "the create timed out")
        T.wait_drained(s)
        tickets = T.sim_tickets(s)
        self.assertEqual(len(tickets), 1, [t["id"] for t in tickets])
        self.assertIn("ticket.recovered", s.ticket_creator.logtext())
        st, js, _ = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)
        self.assertEqual(int(js["status"]["tickets_created"]), 1, js["status"])
        self.assertEqual(s.kcat("dlq"), [])
        # The trace shows the timeout once, in the engine's words, and one ticket: the found one.
        def traced():
            st, js, _ = s.api("GET", "/v1/tenants/%s/incidents/slow-1" % T.TENANT)
            steps = [e["step"] for e in js["incidents"][0]["entries"]] if st == 200 else []
            return js["incidents"][0]["entries"] if "normalized" in steps else None
        entries = wait_until(traced, 30, "the trace")
        self.assertEqual([e["step"] for e in entries],
                         ["received", "normalized", "create", "error", "ticket_created"], entries)
        self.assertEqual((entries[3]["method"], entries[3]["path"]), ("POST", "/tickets"))
        self.assertIn("the ticket may exist", entries[3]["error"])
        self.assertEqual(entries[4]["ticket_id"], tickets[0]["id"])

    def test_comment_answered_after_the_timeout_is_found_not_made_twice(self):
        """A re-fire's comment that Syncro adds but answers after our timeout: sending the POST
        again added a second comment ("re-fires comment, never duplicate"). Now the event starts
        over from its pending marker and reads the ticket for its marker first."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=1)
        inc = {"id": "slow-2", "org_id": "org-0001", "org_name": "Org One", "alert_type": "device_offline",
               "severity": "high", "status": "open", "subject": "WS-02", "title": "Device offline",
               "description": "WS-02 stopped reporting.", "occurred_at": "2026-12-06T06:00:00Z"}
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        wait_until(lambda: len(T.sim_tickets(s)) == 1 or None, 60, "the ticket")
        T.wait_drained(s)
        # The next Syncro request (the re-fire's comment POST) is handled at once and answered
        # 5 s later.
        s.sim_config({"hang_next": 1, "hang_ms": 5000})
        st, js, _ = T.post_incident(s, secret, dict(inc, occurred_at="2026-12-06T06:05:00Z"))
        self.assertEqual(st, 202, js)
        wait_until(lambda: "syncro.retry" in s.ticket_creator.logtext(), 60, "the comment timed out")
        T.wait_drained(s)
        got = T.actual(T.sim_tickets(s))
        self.assertEqual([(t["comments"], t["changes"]) for t in got["slow-2"]], [(1, [])], got)
        st, js, _ = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)
        self.assertEqual(int(js["status"]["comments_added"]), 1, js["status"])
        self.assertEqual(s.kcat("dlq"), [])
        log = s.ticket_creator.logtext()
        self.assertIn("the comment may have landed", log)

    def test_unmapped_org_is_dead_lettered_visible_and_replayable(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=3, unmapped=("org-0003",))
        inc = T.unmapped_incident()
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        ok = dict(inc, id="inc-mapped-1", org_id="org-0001", org_name="Org One")
        st, js, _ = T.post_incident(s, secret, ok)
        self.assertEqual(st, 202, js)

        dl = wait_until(lambda: s.kcat("dlq", fmt="%h\t%s\n"), 120, "dead letter")
        self.assertEqual(len(dl), 1, dl)
        self.assertIn("no Syncro customer mapped for org org-0003 (Umbrella Corp)", dl[0])
        self.assertIn("x-dlq-service=ticket-creator", dl[0])
        wait_until(lambda: len(T.sim_tickets(s)) == 1, 60, "the mapped org's ticket")

        status = s.status(T.TENANT)["ticketing"]
        self.assertEqual([o["org_id"] for o in status["unmapped_orgs"]], ["org-0003"], status)
        self.assertEqual(status["unmapped_orgs"][0]["incidents"], 1)
        self.assertEqual(status["dead_lettered"], 1)
        self.assertIn("org-0003", status["last_error"])

        # Map it, replay the dead letter: the incident becomes its ticket, once.
        cust = sorted(c["id"] for c in s.inventory(T.TENANT, "customers"))[5].split(":")[1]
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing/orgs/org-0003" % T.TENANT,
                          {"customer_id": int(cust)})
        self.assertEqual(st, 200, js)
        self.assertEqual(s.status(T.TENANT)["ticketing"]["unmapped_orgs"], [])
        rc, out, err = s.dlq_tool("replay")
        self.assertEqual(rc, 0, err)
        wait_until(lambda: len(T.sim_tickets(s)) == 2, 60, "the replayed incident's ticket")
        t = [t for t in T.sim_tickets(s) if str(t["customer_id"]) == cust]
        self.assertEqual(len(t), 1)
        T.wait_drained(s)  # everything consumed (not a sleep): and still no second ticket
        self.assertEqual(len(T.sim_tickets(s)), 2)

    def test_rules_technician_changes_reopen_window_and_deleted_tickets(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        cfg = dict(T.DEFAULT_CONFIG, rules={
            "*": {"create": True, "priority": "2 Normal", "status": "New"},
            "password_expiring": {"create": False},
            "disk_space_low": {"create": True, "status": "Waiting for Parts"},
            "device_offline": {"create": True, "problem_type": "Hardware", "priority": "1 High",
                               "status": "In Progress", "due_in_days": 0, "assignee_user_id": 1002},
        })
        secret = T.setup(s, orgs=2, config=cfg)
        clock = [0]

        def send(iid, status, alert="device_offline", org="org-0001"):
            clock[0] += 1
            inc = {"id": iid, "org_id": org, "org_name": "Org", "alert_type": alert,
                   "severity": "high", "status": status, "subject": "WS-" + iid,
                   "title": "Alert " + alert, "occurred_at": "2026-11-23T10:%02d:00.000Z" % clock[0]}
            st, js, _ = T.post_incident(s, secret, inc)
            self.assertEqual(st, 202, js)

        def tickets_of(iid):
            return [t for t in T.sim_tickets(s)
                    if T.INCIDENT_RE.search(sorted(t["comments"], key=lambda c: c["id"])[0]["body"]).group(1) == iid]

        # Per-alert-type rule: problem type, priority, status, assignee, due today.
        send("a", "open")
        t = wait_until(lambda: tickets_of("a"), 60, "ticket a")[0]
        self.assertEqual((t["problem_type"], t["priority"], t["status"], t["user_id"]),
                         ("Hardware", "1 High", "In Progress", 1002))
        self.assertEqual(t["subject"], "Alert device_offline - WS-a")
        # A rule that says no ticket.
        send("p", "open", alert="password_expiring")
        # A technician changes ticket a: the resolve leaves it open and says why, in a hidden comment.
        s.sim_admin("PUT", "/_sim/accounts/%s/tickets/%d" % (T.SUB, t["id"]),
                    {"comment": {"body": "Looking into it", "hidden": False}})
        send("a", "resolved")
        wait_until(lambda: len(tickets_of("a")[0]["comments"]) == 3, 60, "left-open comment")
        t = tickets_of("a")[0]
        self.assertEqual(t["status"], "In Progress")
        note = sorted(t["comments"], key=lambda c: c["id"])[-1]
        self.assertIn("a technician commented on it", note["body"])
        self.assertTrue(note["hidden"])

        # Untouched ticket b is resolved; outside the reopen window a re-fire opens a new ticket.
        send("b", "open")
        wait_until(lambda: tickets_of("b"), 60, "ticket b")
        send("b", "resolved")
        wait_until(lambda: tickets_of("b")[0]["status"] == "Resolved", 60, "b resolved")
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, dict(cfg, reopen_window_days=0))
        self.assertEqual(st, 200, js)
        send("b", "open")
        wait_until(lambda: len(tickets_of("b")) == 2, 60, "a second ticket for b")
        self.assertEqual(sorted(t["status"] for t in tickets_of("b")), ["In Progress", "Resolved"])

        # A ticket deleted in Syncro (404): the next re-fire starts a new one instead of failing.
        send("c", "open", alert="backup_failed")
        c1 = wait_until(lambda: tickets_of("c"), 60, "ticket c")[0]
        s.sim_admin("DELETE", "/_sim/accounts/%s/tickets/%d" % (T.SUB, c1["id"]))
        send("c", "open", alert="backup_failed")
        c2 = wait_until(lambda: tickets_of("c"), 60, "a new ticket c")[0]
        self.assertNotEqual(c2["id"], c1["id"])
        self.assertEqual(len(c2["comments"]), 1)
        # Auto-ticketing off: incidents are consumed and counted, nothing is created.
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, dict(cfg, enabled=False))
        self.assertEqual(st, 200, js)
        send("d", "open")
        T.wait_drained(s)
        self.assertEqual(tickets_of("p"), [])
        self.assertEqual(tickets_of("d"), [])
        status = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)[1]["status"]
        self.assertEqual(int(status["skipped"]), 2, status)
        self.assertEqual(s.kcat("dlq"), [])
        # Syncro refuses a ticket (422): dead-lettered with Syncro's own words, nothing retried.
        # (A rule naming a status the account lacks is refused on save once the settings are
        # synced; here the status leaves Syncro after the save and before any sync.)
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, cfg)
        self.assertEqual(st, 200, js)
        statuses = s.sim_admin("GET", "/_sim/accounts/%s" % T.SUB)["ticket_statuses"]
        s.sim_admin("PUT", "/_sim/accounts/%s" % T.SUB,
                    {"ticket_statuses": [x for x in statuses if x != "Waiting for Parts"]})
        send("e", "open", alert="disk_space_low")
        dl = wait_until(lambda: s.kcat("dlq", fmt="%h\t%s\n"), 60, "dead letter")
        self.assertEqual(len(dl), 1, dl)
        self.assertIn("Syncro POST /tickets answered 422: Status is not included in the list", dl[0])
        self.assertEqual(tickets_of("e"), [])


if __name__ == "__main__":
    main()
