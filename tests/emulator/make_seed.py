#!/usr/bin/env python3
"""Generate an emulator seed: configurations and numbers as people type them.

    python3 tests/emulator/make_seed.py --configurations N --numbers M \\
        [--seed S] [--mapping FILE] [-o FILE]

Every number is generated canonically first (country, area code,
subscriber digits, all in ranges libphonenumber 8.12 treats as valid; see
README.md) and then rendered the way people type it: `+49 151 2345 6789`,
`0151/23456789`, `(415) 555-0100`, `0044 20 7946 0958`,
`+44 (0)20 7946 0958`, ... National formats are used only in a
configuration whose default region is the number's country, and `00` /
`011` prefixes only where they are that region's international prefix, so
each row's `expected_e164` is known by construction. Some rows are invalid
on purpose (`expected_e164` null), some repeat a number of the same
configuration typed differently, some are inactive, names are Unicode.

The output is one JSON document with one row per line (streamed; 1,000,000
numbers take a few seconds). The format is described in README.md.
"""

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# region -> (calling code, international prefix, trunk prefix)
REGIONS = {"DE": ("49", "00", "0"), "GB": ("44", "00", "0"),
           "US": ("1", "011", "1")}

# Canonical ranges: (area code, fixed local prefix, free digits).
# All verified with libphonenumber 8.12.57 IsValidNumber.
RANGES = {
    "DE": [("151", "", 8), ("152", "", 8), ("157", "", 8), ("170", "", 8),
           ("171", "", 8), ("175", "", 8), ("176", "", 8), ("178", "", 8),
           ("160", "", 7), ("30", "", 8), ("40", "", 8), ("89", "", 7),
           ("221", "", 7)],
    "GB": [("7400", "", 6), ("7500", "", 6), ("7800", "", 6),
           ("7900", "", 6), ("20", "79460", 3), ("161", "4960", 3),
           ("113", "4960", 3)],
    "US": [(ac, "5550", 3) for ac in (
        "201", "212", "213", "305", "312", "415", "617", "646", "650",
        "702", "713", "718", "206", "303", "404", "503", "512", "602",
        "615", "704", "720", "802", "919", "971")],
}

FIRST = ["Zoë", "José", "Łukasz", "Ólafur", "Jürgen", "Søren", "Ana",
         "François", "Björn", "Siobhán", "Dmitri", "Ольга", "Αλέξης",
         "さくら", "李", "Aïcha", "Nuño", "Émilie", "Mário", "Kateřina",
         "Ahmed", "Priya", "O'Neil", "Grace", "Tomás", "Zoltán"]
LAST = ["Müller", "García", "Żółć", "Núñez", "Smith", "O'Bryan",
        "Øvergård", "Dvořák", "Çelik", "Nguyễn", "Kowalski", "Иванова",
        "Παπαδόπουλος", "渡辺", "王", "Ben Salah", "Silva", "Schäfer",
        "van der Berg", "Łęcka", "Ångström", "Ferreira", "🌟 VIP"]
CITIES = ["München", "Köln", "London", "Zürich", "São Paulo", "Düsseldorf",
          "New York", "Kraków", "Malmö", "Besançon"]
SOURCES = ["WhatsApp keyword", "web form", "import", "CRM admin",
           "button reply", "marketing form"]
STATUSES = ["single_opt_in", "double_opt_in", "opted_out"]
TOPICS = ["promotions", "newsletter", "events", "surveys"]

# Robustly unparseable under any region (not even a possible number, the
# rule optsync keys by): too short, no digits, unknown country code.
# Region traps (an international prefix that is not the region's) are
# added per configuration below.
INVALID = ["n/a", "unknown", "+999 123 4567", "123", "+49 15",
           "+44 20 7946", "0", "+1 415 555", "call me"]


class Gen:
    def __init__(self, seed, roles):
        self.rng = random.Random(seed)
        self.rand = self.rng.random
        self.roles = roles          # optional roles the mapping maps

    def pick(self, seq):
        """rng.choice without its per-call overhead (hot path)."""
        return seq[int(self.rand() * len(seq))]

    def below(self, n):
        return int(self.rand() * n)

    def guid(self):
        v = self.rng.getrandbits(128)
        v = (v & ~(0xF << 76)) | (4 << 76)
        v = (v & ~(0x3 << 62)) | (0x2 << 62)
        h = "%032x" % v
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20],
                                   h[20:])

    def when(self, start, span):
        t = start + self.rng.randrange(span)
        return _iso(t)

    # -- numbers ---------------------------------------------------------
    def canonical(self, region, wide=False):
        """A valid number of `region`. US numbers come from the fictional
        555-01xx block unless `wide` (the block holds 2,400 numbers; large
        seeds need more, and libphonenumber accepts any NXX exchange)."""
        area, fixed, free = self.pick(RANGES[region])
        digits = "%0*d" % (free, self.below(10 ** free))
        if region == "US":
            if wide:
                exchange = 200 + self.below(800)
                if exchange % 100 == 11 or exchange == 555:
                    exchange = 556
                return region, area, "%03d%04d" % (exchange,
                                                   self.below(10000))
            digits = "1" + digits[1:]            # 555-01xx: fictional
        return region, area, fixed + digits

    def render(self, number, config_region):
        """A messy but valid spelling of `number` for a configuration whose
        default region is `config_region`."""
        region = number[0]
        if region == config_region and self.rand() < 0.6:
            return self._national(number), "national"
        return self._international(number, config_region), "international"

    def _international(self, number, config_region):
        region, area, local = number
        cc = REGIONS[region][0]
        k = self.below(5)
        if k == 0:
            return "+" + cc + area + local
        grouped = _group(region, area, local)
        if k == 1:
            return "+%s %s" % (cc, grouped)
        idd = REGIONS[config_region][1]
        if k == 2:
            return "%s %s %s" % (idd, cc, grouped)
        if k == 3:
            return "%s%s %s%s" % (idd, cc, area, local)
        if region == "US":
            return "+1 (%s) %s-%s" % (area, local[:3], local[3:])
        return "+%s (0)%s" % (cc, grouped)

    def _national(self, number):
        region, area, local = number
        if region == "US":
            a, b = local[:3], local[3:]
            return self.pick(US_NATIONAL) % (area, a, b)
        k = self.below(5 if region == "DE" else 3)
        if k == 1:
            return "0%s %s" % (area, local)
        if k == 3:
            return "0%s/%s" % (area, local)
        if k == 4:
            return "0%s-%s" % (area, local)
        grouped = _group(region, area, local)
        if k == 0:
            return "0" + grouped
        return "(0%s) %s" % (area, grouped[len(area) + 1:])

    @staticmethod
    def e164(number):
        region, area, local = number
        return "+%s%s%s" % (REGIONS[region][0], area, local)


def _group(region, area, local):
    if region == "US":
        return "%s %s %s" % (area, local[:3], local[3:])
    if region == "GB" and len(area) == 2:
        return "%s %s %s" % (area, local[:4], local[4:])
    if len(local) == 8:
        return "%s %s %s" % (area, local[:4], local[4:])
    return "%s %s %s" % (area, local[:3], local[3:])


_DAYS = {}
_HMS = ["T%02d:%02d:%02dZ" % (s // 3600, s // 60 % 60, s % 60)
        for s in range(86400)]


def _iso(epoch):
    """UTC ISO-8601 with Z; dates and times come from tables (hot path)."""
    day, sec = divmod(int(epoch), 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%d",
                                          time.gmtime(day * 86400))
    return date + _HMS[sec]


US_NATIONAL = ["(%s) %s-%s", "%s.%s.%s", "1-%s-%s-%s", "%s-%s-%s",
               "%s %s %s"]
REGION_FORMS = {"DE": ["DE", "49", "+49"], "GB": ["GB", "44", "+44"],
                "US": ["US", "1", "+1"]}


def make_configurations(gen, n):
    out = []
    order = ["DE", "GB", "US"]
    for i in range(n):
        region = order[i % 3]
        form = REGION_FORMS[region][(i // 3) % 3]
        row = {"id": gen.guid(),
               "name": "WhatsApp %s %d – %s" % (region, i + 1,
                                                 CITIES[i % len(CITIES)]),
               "double_opt_in": i % 2 == 1,
               "phone_number_id": "1%014d" % (100000 + i),
               "waba_id": "2%014d" % (500000 + i // 2),
               "default_region": form,
               "active": not (n >= 4 and i == n - 1),
               "created_on": "2024-01-%02dT09:00:00Z" % (1 + i % 28),
               "modified_on": "2024-06-%02dT12:00:00Z" % (1 + i % 28),
               "expected_region": region}
        out.append(row)
    return out


def number_rows(gen, configs, m):
    """Yield number rows; keeps per-configuration canonical sets so that
    only intended duplicates repeat a number."""
    used = [set() for _ in configs]
    recent = [[] for _ in configs]
    others = {r: [x for x in REGIONS if x != r] for r in REGIONS}
    base = 1700000000
    rand = gen.rand
    nconf = len(configs)
    for _ in range(m):
        ci = int(rand() * nconf)
        cfg = configs[ci]
        region = cfg["expected_region"]
        r = rand()
        if r < 0.02 and recent[ci]:
            number = gen.pick(recent[ci])
            raw, form = gen.render(number, region)
            expected, form = gen.e164(number), "duplicate-" + form
        elif r < 0.05:
            raw, expected, form = _invalid(gen, region), None, "invalid"
        elif r < 0.052:
            raw, expected, form = None, None, "missing"
        else:
            number = None
            for attempt in range(20):
                home = region if rand() < 0.85 else gen.pick(others[region])
                cand = gen.canonical(home, wide=attempt >= 2)
                key = cand[1] + cand[2] + cand[0]
                if key not in used[ci]:
                    number = cand
                    break
            if number is None:
                raise SystemExit("make_seed: ranges exhausted; use more "
                                 "configurations")
            used[ci].add(key)
            if len(recent[ci]) < 64:
                recent[ci].append(number)
            else:
                recent[ci][gen.below(64)] = number
            raw, form = gen.render(number, region)
            expected = gen.e164(number)
        yield _number(gen, cfg, raw, expected, form, base)


def _invalid(gen, region):
    traps = {"US": "0044 20 7946 0958", "DE": "011 44 20 7946 0958",
             "GB": "011 49 151 2345 6789"}
    if gen.rand() < 0.3:
        return traps[region]
    return gen.pick(INVALID)


def _number(gen, cfg, raw, expected, form, base):
    rand = gen.rand
    modified = base + int(rand() * 30000000)
    row = {"id": gen.guid(), "configuration": cfg["id"],
           "name": FIRST[int(rand() * len(FIRST))] + " " +
           LAST[int(rand() * len(LAST))],
           "phone": raw,
           "status": STATUSES[int(rand() * 3)],
           "active": rand() >= 0.05,
           "consent_at": _iso(modified - int(rand() * 86400 * 30)),
           "source": SOURCES[int(rand() * len(SOURCES))]
           if rand() < 0.9 else None,
           "created_on": _iso(modified - int(rand() * 86400 * 365)),
           "modified_on": _iso(modified)}
    if "topics" in gen.roles:
        row["topics"] = ";".join(gen.rng.sample(TOPICS, 2)) \
            if rand() < 0.05 else None
    if "paused_until" in gen.roles:
        row["paused_until"] = _iso(modified + 86400 * 14) \
            if rand() < 0.03 else None
    row["expected_e164"] = expected
    row["_form"] = form
    return row


def mapped_roles(mapping_path):
    with open(mapping_path, encoding="utf-8") as f:
        mapping = json.load(f)
    return set(mapping.get("number", {})) | \
        set(mapping.get("configuration", {}))


_enc_str = json.encoder.encode_basestring


def _row_json(row):
    """json.dumps for a flat row of str/bool/None (hot path)."""
    parts = []
    for key, value in row.items():
        if value is None:
            v = "null"
        elif value is True:
            v = "true"
        elif value is False:
            v = "false"
        else:
            v = _enc_str(value)
        parts.append('"%s":%s' % (key, v))
    return "{" + ",".join(parts) + "}"


def write_seed(out, gen, n_configs, n_numbers):
    configs = make_configurations(gen, n_configs)
    dumps = json.JSONEncoder(ensure_ascii=False,
                             separators=(",", ":")).encode
    out.write('{"format":"optsync-emulator-seed/1",\n"configurations":[\n')
    out.write(",\n".join(dumps(c) for c in configs))
    out.write('\n],\n"numbers":[\n')
    first = True
    buf = []
    for row in number_rows(gen, configs, n_numbers):
        buf.append(("" if first else ",\n") + _row_json(row))
        first = False
        if len(buf) >= 4096:
            out.write("".join(buf))
            buf = []
    out.write("".join(buf))
    out.write("\n]}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configurations", type=int, required=True)
    ap.add_argument("--numbers", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mapping",
                    default=os.path.join(HERE, "..", "..", "mapping",
                                         "whatsapp4dynamics.json"))
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    if args.configurations < 1 or args.numbers < 0:
        ap.error("need at least one configuration")
    gen = Gen(args.seed, mapped_roles(args.mapping))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            write_seed(out, gen, args.configurations, args.numbers)
    else:
        write_seed(sys.stdout, gen, args.configurations, args.numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
