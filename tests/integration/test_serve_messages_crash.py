"""kill -9 of `optsync serve` with a consent message on its way: both
emulators, serve receiving the customer's STOP from the WhatsApp emulator
(signed, over real HTTP) and sending the opt-out confirmation through the
emulator's Cloud API route. The emulator keeps the confirmation from being
accepted (fault injection), serve is killed with SIGKILL, the emulator is
restored and serve restarted: exactly one confirmation is accepted for
the number, and the Dataverse row is Opted-Out.

  * the send fails (a 5xx, retried with backoff): the message is pending
  * the send is held on the wire, then the connection dropped without
    anything sent: the message is claimed (inflight) when serve dies

Helpers: serve_testlib.ServeCase (serve's process and log, waits with a
deadline) and test_messages.MessagesCase (the seed, both emulators, the
[whatsapp] and [messages] settings).

ctest-labels: quick;integration
ctest-timeout: 600
"""

import signal
import unittest

from serve_testlib import DEADLINE, ServeCase
from test_messages import OPTED_IN, WA_SECRET, MessagesCase

WA_ID = OPTED_IN[1:]  # the emulator names users by wa_id (digits)


class ServeMessagesCrash(ServeCase, MessagesCase):

    def start_all(self):
        # serve's cache comes from MessagesCase.start's first sync.
        self.start(**{"outbox.max_backoff": "1s"})
        self.start_serve()
        status, out = self.wa.control("POST", "settings", {
            "webhook_url": "http://127.0.0.1:%d/webhooks/whatsapp"
            % self.port, "app_secret": WA_SECRET})
        self.assertEqual(status, 200, out)

    def fault(self, spec):
        status, out = self.wa.control("POST", "faults", spec)
        self.assertEqual(status, 201, out)
        return out["faults"][0]["id"]

    def kill_restore_restart(self, fault_ids):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)
        for fid in fault_ids:
            status, out = self.wa.control("DELETE", "faults/%d" % fid)
            self.assertEqual(status, 200, out)  # a hold is released
        self.wa.wait(condition="idle", timeout=DEADLINE)
        # Nothing was accepted while serve lived.
        self.assertEqual(self.sent(to=WA_ID), [])
        self.start_serve()

    def check_converged(self):
        self.wa.wait(condition="messages", to=WA_ID, timeout=DEADLINE)
        self.wait_for(lambda: self.dv_status(OPTED_IN) == ["opted_out"],
                      "the opt-out reaches Dynamics")
        self.wait_outbox_empty("serve sends and writes everything")
        msgs = self.sent(to=WA_ID)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0]["type"], "text")  # inside the window
        self.assertEqual(msgs[0]["text"],
                         "Blumen Schmidt: Sie sind abgemeldet.")
        self.assertEqual([r[1] for r in self.wa_rows()], ["done"])
        self.assertEqual(self.stop_serve(), 0)
        # Once more after a clean stop: still the one message.
        self.assertEqual(len(self.sent(to=WA_ID)), 1)

    def test_kill_while_the_confirmation_fails(self):
        self.start_all()
        fid = self.fault({"type": "status", "status": 503, "count": None,
                          "match": {"to": WA_ID}})
        self.reply(OPTED_IN, "STOP")  # serve answered 200
        # The confirmation was tried and refused: queued, not sent.
        self.wa.wait(condition="attempts", status=503, timeout=DEADLINE)
        self.assertIn([r[1] for r in self.wa_rows()],
                      (["pending"], ["inflight"]))
        self.kill_restore_restart([fid])
        self.check_converged()

    def test_kill_while_the_confirmation_is_on_the_wire(self):
        self.start_all()
        # Held first, then the connection closed without an answer and
        # nothing sent (faults act in that order, wa_faults.py).
        hold = self.fault({"type": "hold", "match": {"to": WA_ID}})
        drop = self.fault({"type": "drop", "match": {"to": WA_ID}})
        self.reply(OPTED_IN, "STOP")  # serve answered 200
        self.wa.wait(condition="held", fault=hold, timeout=DEADLINE)
        self.assertEqual([r[1] for r in self.wa_rows()], ["inflight"])
        self.kill_restore_restart([hold, drop])
        self.check_converged()


if __name__ == "__main__":
    unittest.main()
