"""Seed generator (make_seed.py): deterministic output, the promised mix
of rows, expectations consistent with the raw spellings, canonical numbers
inside the documented libphonenumber-valid ranges, and seeds the emulator
loads under both mappings."""

import collections
import io
import json
import os
import re
import unittest

import make_seed
from emu_testlib import EmulatorTest
from launcher import SOURCE_DIR

IDD = {"DE": "00", "GB": "00", "US": "011"}
CC = {"DE": "49", "GB": "44", "US": "1"}


def generate(configs, numbers, seed=1, mapping=None):
    gen = make_seed.Gen(seed, make_seed.mapped_roles(
        mapping or os.path.join(SOURCE_DIR, "mapping",
                                "whatsapp4dynamics.json")))
    out = io.StringIO()
    make_seed.write_seed(out, gen, configs, numbers)
    return out.getvalue()


def naive_e164(raw, region):
    """What the generator's own spellings mean (not a general parser)."""
    s = raw.replace("(0)", "")
    digits = re.sub(r"\D", "", s)
    if s.lstrip().startswith("+"):
        return "+" + digits
    if digits.startswith(IDD[region]):
        return "+" + digits[len(IDD[region]):]
    if region == "US":
        return "+" + digits if len(digits) == 11 else "+1" + digits
    return "+" + CC[region] + digits[1:]


def in_documented_range(e164):
    for region, ranges in make_seed.RANGES.items():
        cc = CC[region]
        for area, fixed, free in ranges:
            if region == "US":
                if re.fullmatch(r"\+1%s(5550\d\d|[2-9]\d\d\d{4})" % area,
                                e164):
                    return True
            elif re.fullmatch(r"\+%s%s%s\d{%d}" % (cc, area, fixed, free),
                              e164):
                return True
    return False


class GeneratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = generate(9, 6000, seed=42)
        cls.doc = json.loads(cls.text)
        cls.configs = {c["id"]: c for c in cls.doc["configurations"]}

    def test_deterministic(self):
        self.assertEqual(generate(9, 6000, seed=42), self.text)
        self.assertNotEqual(generate(9, 6000, seed=43), self.text)

    def test_one_row_per_line(self):
        lines = self.text.splitlines()
        self.assertEqual(len(lines), 2 + 9 + 2 + 6000 + 1)
        for line in lines[2:11]:
            json.loads(line.rstrip(","))

    def test_configurations(self):
        configs = self.doc["configurations"]
        self.assertEqual(len(configs), 9)
        self.assertEqual({c["default_region"] for c in configs},
                         {"DE", "GB", "US", "49", "44", "1", "+49", "+44",
                          "+1"})
        self.assertEqual({c["double_opt_in"] for c in configs}, {True, False})
        self.assertIn(False, {c["active"] for c in configs})
        wabas = collections.Counter(c["waba_id"] for c in configs)
        self.assertGreater(max(wabas.values()), 1)
        self.assertTrue(any(re.search(r"[^\x00-\x7f]", c["name"])
                            for c in configs))

    def test_mix_of_numbers(self):
        nums = self.doc["numbers"]
        self.assertEqual(len(nums), 6000)
        self.assertEqual({n["status"] for n in nums},
                         {"single_opt_in", "double_opt_in", "opted_out"})
        self.assertIn(False, {n["active"] for n in nums})
        forms = collections.Counter(n["_form"] for n in nums)
        for form in ("national", "international", "invalid", "missing",
                     "duplicate-national", "duplicate-international"):
            self.assertGreater(forms[form], 0, form)
        self.assertTrue(any(re.search(r"[^\x00-\x7f]", n["name"])
                            for n in nums))
        raws = {n["phone"] for n in nums}
        for shape in (r"^\+49 1\d\d \d{4} \d{4}$", r"^01\d\d/\d{8}$",
                      r"^\(\d{3}\) 555-01\d\d$", r"^0044 20 7946 0\d{3}$",
                      r"^\+44 \(0\)20 7946 0\d{3}$"):
            self.assertTrue(any(r and re.match(shape, r) for r in raws),
                            shape)

    def test_expectations_match_spellings(self):
        for n in self.doc["numbers"]:
            region = self.configs[n["configuration"]]["expected_region"]
            if n["expected_e164"] is None:
                self.assertIn(n["_form"], ("invalid", "missing"))
                continue
            self.assertEqual(naive_e164(n["phone"], region),
                             n["expected_e164"], n)
            self.assertTrue(in_documented_range(n["expected_e164"]), n)
            national = not n["phone"].startswith("+") and not re.sub(
                r"\D", "", n["phone"]).startswith(IDD[region])
            if national:
                self.assertTrue(n["expected_e164"].startswith(
                    "+" + CC[region]), n)

    def test_duplicates_within_a_configuration(self):
        seen = collections.defaultdict(set)
        for n in self.doc["numbers"]:
            if n["expected_e164"]:
                seen[(n["configuration"], n["expected_e164"])].add(
                    n["phone"])
        self.assertTrue(any(len(v) > 1 for v in seen.values()))

    def test_cli(self):
        import subprocess
        import sys
        out = subprocess.run([sys.executable, make_seed.__file__,
                              "--configurations", "2", "--numbers", "5",
                              "--seed", "3"], capture_output=True, check=True)
        doc = json.loads(out.stdout)
        self.assertEqual(len(doc["numbers"]), 5)
        bad = subprocess.run([sys.executable, make_seed.__file__,
                              "--configurations", "0", "--numbers", "5"],
                             capture_output=True)
        self.assertNotEqual(bad.returncode, 0)


class LoadDefaultMappingTest(EmulatorTest):
    seed = json.loads(generate(4, 3000, seed=9))

    def test_counts_per_configuration(self):
        per = collections.Counter(n["configuration"]
                                  for n in self.seed["numbers"])
        for cfg_id, count in per.items():
            r = self.get("inogic_configurations(%s)/inogic_configuration_"
                         "inogic_optinoptoutnumber/$count" % cfg_id)
            self.assertEqual(r.body.decode("utf-8-sig"), str(count))
        r = self.get("inogic_optinoptoutnumbers",
                     [("$select", "inogic_phonenumber")],
                     prefer="odata.maxpagesize=1000")
        rows, pages = self.all_pages(r, "odata.maxpagesize=1000")
        self.assertEqual(len(rows), 3000)
        self.assertEqual(len(pages), 3)
        phones = collections.Counter(x["inogic_phonenumber"] for x in rows)
        self.assertEqual(phones, collections.Counter(
            n["phone"] for n in self.seed["numbers"]))


class LoadAltMappingTest(EmulatorTest):
    mapping = os.path.join(SOURCE_DIR, "tests", "data", "mapping_alt.json")
    seed = json.loads(generate(3, 500, seed=5, mapping=mapping))

    def test_optional_roles_loaded(self):
        self.assertIn("topics", self.seed["numbers"][0])
        r = self.get("cts_consentnumbers", [("$select", "cts_optedouttopics,"
                                             "cts_pauseduntil")])
        rows = r.json["value"]
        self.assertEqual(len(rows), 500)
        self.assertTrue(any(x["cts_optedouttopics"] for x in rows))


if __name__ == "__main__":
    unittest.main()
