"""--response-cache (emu_respcache.py): a repeated read is answered from
the cache, byte for byte, and never once the answer could differ: after
a write, for other request headers, or after any control request (delta
tokens expired by the control API)."""

import unittest

from emu_testlib import NUMBERS, PHONE, EmulatorTest, nid


class ResponseCacheTest(EmulatorTest):
    args = ["--response-cache", "16"]

    def counts(self):
        status, doc = self.control("GET", "counters")
        self.assertEqual(status, 200)
        return doc["response_cache"], doc["requests"]

    def test_repeated_read_is_the_same_answer(self):
        before, _ = self.counts()
        first = self.get(NUMBERS, [("$select", PHONE)],
                         prefer="odata.maxpagesize=5")
        again = self.get(NUMBERS, [("$select", PHONE)],
                         prefer="odata.maxpagesize=5")
        self.assertEqual(first.status, 200)
        self.assertEqual(again.body, first.body)
        after, _ = self.counts()
        self.assertEqual(after["hits"] - before["hits"], 1)
        # Other headers shape another answer.
        other = self.get(NUMBERS, [("$select", PHONE)],
                         prefer="odata.maxpagesize=3")
        self.assertEqual(len(other.json["value"]), 3)

    def test_switched_off(self):
        status, _ = self.control("POST", "response-cache", {"enabled": False})
        self.assertEqual(status, 200)
        try:
            before, _ = self.counts()
            self.get(NUMBERS, [("$select", PHONE)])
            self.get(NUMBERS, [("$select", PHONE)])
            after, _ = self.counts()
            self.assertEqual(after["hits"], before["hits"])
            self.assertFalse(after["enabled"])
        finally:
            self.control("POST", "response-cache", {"enabled": True})

    def test_a_write_is_seen(self):
        url = NUMBERS + "(%s)" % nid(2)
        old = self.get(url, [("$select", PHONE)])
        self.assertEqual(self.get(url, [("$select", PHONE)]).body, old.body)
        w = self.send("PATCH", url, {PHONE: "+49 170 5550123"})
        self.assertEqual(w.status, 204, w)
        new = self.get(url, [("$select", PHONE)])
        self.assertEqual(new.json[PHONE], "+49 170 5550123")



class ControlEmptiesTheCacheTest(EmulatorTest):
    """Its own emulator: the clock moves on by days."""
    args = ["--response-cache", "16"]

    def test_clock_moved_on(self):
        first = self.get(NUMBERS, [("$select", PHONE)],
                         prefer="odata.track-changes")
        link = first.json["@odata.deltaLink"]
        self.assertEqual(self.follow(link).status, 200)
        self.assertEqual(self.follow(link).status, 200)
        # Eight days on, the token is expired; no write moved the store.
        status, _ = self.control("POST", "clock", {"advance": 8 * 86400})
        self.assertEqual(status, 200)
        self.assertODataError(self.follow(link, token=self.emu.token()),
                              400, "0x80044352")


if __name__ == "__main__":
    unittest.main()
