"""Roster bulk load (issue 18, item 1(d)): a province's monthly roster from a department export to its topic.

Why: a department drops its whole roster — 1 M persons is a prefecture's monthly 低保/特困 or 脱贫人口 list —
into the ``file_drop`` inbox, and every row must reach the hub (or a dead letter) before the next month's. The
targets: 1 M rows from a GBK CSV to the topic in ≤ 90 s, from an XLSX in ≤ 3 min, on 2 cores.

What it does, per format:

1. writes the roster as a department exports it (cached under ``--files``, reused when present): the CSV as the
   civil-affairs bureau's 农村低保、特困人员花名册 (GBK, CRLF, a title line and a blank line above the header,
   ``connectors/examples/civil_affairs_roster.yaml``), the XLSX as the rural-revitalization bureau's
   防止返贫监测对象和脱贫人口信息表 (a title row and a 填报单位 row above the header,
   ``connectors/examples/revitalization_roster.yaml``). One row in ``--bad-every`` has a mistyped ID number
   (wrong check character, the commonest clerical error);
2. runs the real command, ``hub connector run CONFIG --once``, as its own process against a fresh embedded broker,
   with the example's own mapping (only the inbox differs, and ``settle_seconds: 0``): the clock runs from
   starting that process to its exit — Python's start-up, reading, parsing, mapping, pseudonymising,
   encoding, producing, committing offsets and moving the file aside are all in;
3. checks before it reports: the topic holds exactly the good rows and the dead letters exactly the bad ones;
   every record decodes, its key is its ``person_token``, and no string in it holds a valid ID number; a sample
   of ``--sample`` rows is compared field by field with values computed here from the generated rows
   (person token, categories, date, region, income in fen).

    .venv/bin/python benchmarks/roster_load.py --rows 1000000 --format csv --format xlsx
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from harness import (
    ROOT,
    BenchError,
    Row,
    Table,
    command_line,
    cpu_seconds,
    die_with_parent,
    row,
    say,
    spy,
    stop_spy,
    summarize_stacks,
)

BENCH_KEY = "roster-benchmark-pseudonym-key-0123456789abcdef"
BENCH_EDGE_KEY = base64.b64encode(bytes(range(32))).decode()
EXAMPLES = ROOT / "connectors" / "examples"

COLUMNS = [("rows", "rows"), ("produced", "records"), ("rejected", "dead letters"), ("mb", "file MB"),
           ("seconds", "seconds"), ("rate", "rows/s"), ("cpu_us", "connector CPU µs/row"),
           ("broker_us", "broker CPU µs/row"), ("rss_mb", "peak RSS MB"), ("target", "target s")]

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = "德福秀英国强文立小梅桂兰老四大二七八九建华明玉珍永红春花志刚丽娟海燕金凤家兴学军晓东云芳"
VILLAGES = [("蒙自市", "文澜镇", "新安所村"), ("蒙自市", "草坝镇", "碧色寨村"), ("个旧市", "鸡街镇", "沙田村"),
            ("建水县", "临安镇", "团山村"), ("屏边县", "玉屏镇", "新华村"), ("红河县", "迤萨镇", "莲花村")]
REGIONS = ("532503", "532501", "532524", "532523", "532529")


@dataclass(frozen=True)
class Person:
    """One generated roster row, as the department knows the person (what the sample check compares with)."""

    n: int
    id_number: str
    good: bool
    name: str
    category: str
    region: str
    day: date
    yuan: str


def _id_number(i: int, rng: random.Random) -> str:
    from hub.identity import check_character

    born = date(1935, 1, 1) + timedelta(days=(i // 1000) * 7 + rng.randrange(7))
    first17 = f"{REGIONS[i % len(REGIONS)]}{born:%Y%m%d}{i % 1000:03d}"
    return first17 + check_character(first17)


def persons(n: int, bad_every: int, seed: int, categories: Sequence[str]) -> Iterator[Person]:
    """``n`` roster rows; every ``bad_every``-th has a mistyped check character (0: none)."""
    rng = random.Random(seed)
    for i in range(n):
        number = _id_number(i, rng)
        good = not (bad_every and i % bad_every == bad_every - 1)
        if not good:
            number = number[:17] + ("0" if number[17] != "0" else "1")
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2)))
        day = date(2024, 3, 1) + timedelta(days=rng.randrange(28))
        yield Person(i + 1, number, good, name, rng.choice(categories), REGIONS[i % len(REGIONS)], day,
                     f"{rng.randrange(2000, 12000)}.{i % 100:02d}")


CSV_CATEGORIES = ("农村低保", "特困人员", "低保对象", "特困供养")
XLSX_CATEGORIES = ("脱贫人口", "监测对象", "脱贫人口、监测对象", "边缘易致贫户", "脱贫户")


def write_csv(path: Path, n: int, bad_every: int, seed: int) -> None:
    """The civil-affairs roster as Excel saves it on a Chinese Windows: GBK, CRLF, a title and a blank line."""
    from connectors.examples.make_samples import CIVIL_HEADER

    with path.open("w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(["蒙自市2024年3月农村低保、特困人员花名册"] + [""] * (len(CIVIL_HEADER) - 1))
        w.writerow([""] * len(CIVIL_HEADER))
        w.writerow(CIVIL_HEADER)
        for p in persons(n, bad_every, seed, CSV_CATEGORIES):
            w.writerow([p.n, p.name, "男" if int(p.id_number[16]) % 2 else "女", p.id_number, p.category,
                        1 + p.n % 5, p.yuan, p.region, p.day.isoformat()])


def write_xlsx(path: Path, n: int, bad_every: int, seed: int) -> None:
    """The revitalization roster as the national system exports it: a title row and a 填报单位 row, text cells."""
    from openpyxl import Workbook

    from connectors.examples.make_samples import REVITALIZATION_HEADER

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("监测对象和脱贫人口")
    ws.append(["红河州2024年3月防止返贫监测对象和脱贫人口信息表"])
    ws.append(["填报单位：红河州乡村振兴局", *([None] * 8), "填报日期：2024-03-31"])
    ws.append(REVITALIZATION_HEADER)
    for p in persons(n, bad_every, seed, XLSX_CATEGORIES):
        county, town, village = VILLAGES[p.n % len(VILLAGES)]
        ws.append([p.n, county, town, village, p.name, p.name, p.id_number, "户主", p.category, p.yuan, p.region,
                   p.day.isoformat()])
    wb.save(path)


@dataclass(frozen=True)
class Format:
    """A roster format: the example config it is read with, its file, and its writer."""

    name: str
    example: str
    suffix: str
    target_s: float
    key_columns: tuple[str, ...]  # (ID-number column, date column, category column, income column or "")


FORMATS = {
    "csv": Format("csv", "civil_affairs_roster.yaml", ".csv", 90.0, ("身份证号码", "审批日期", "救助类别", "")),
    "xlsx": Format("xlsx", "revitalization_roster.yaml", ".xlsx", 180.0,
                   ("证件号码", "变更日期", "人员类别", "家庭年人均纯收入(元)")),
}


def roster_file(fmt: Format, files: Path, n: int, bad_every: int, seed: int) -> Path:
    """The generated roster, written once per (format, rows, bad_every, seed) and reused."""
    path = files / f"roster-{fmt.name}-{n}-{bad_every}-{seed}{fmt.suffix}"
    if not path.exists():
        say(f"writing {path} …")
        started = time.perf_counter()
        tmp = path.with_suffix(".partial" + fmt.suffix)
        (write_csv if fmt.name == "csv" else write_xlsx)(tmp, n, bad_every, seed)
        tmp.rename(path)
        say(f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
    return path


def bench_config(fmt: Format, inbox: Path, dest: Path, batch_size: int | None, workers: int | None = None) -> Path:
    """The example's configuration with this inbox (and no settle time); everything else as shipped."""
    cfg = yaml.safe_load((EXAMPLES / fmt.example).read_text(encoding="utf-8"))
    cfg.update(name=f"bench-{cfg['name']}", inbox=str(inbox), settle_seconds=0, patterns=[f"*{fmt.suffix}"])
    if batch_size is not None:
        cfg["batch_size"] = batch_size
    if workers is not None:
        cfg["workers"] = workers
    dest.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------------ checks


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` (key, value), read fast with aiokafka."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed", max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).values():
                out += [(m.key, m.value) for m in msgs]
        return out
    finally:
        await consumer.stop()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def expected_value(fmt: Format, cfg: dict[str, Any], p: Person) -> dict[str, Any]:
    """What the record of ``p`` must hold, computed here from the generated row and the mapping's wording."""
    from hub.identity import person_token

    fields = cfg["mapping"]["fields"]
    wording = fields["categories"]["values"]
    cats = sorted({wording[c] for c in p.category.replace("、", " ").split() if wording.get(c)})
    at = f"{p.day.isoformat()}T00:00:00+08:00"
    out = {"person_token": person_token(p.id_number, BENCH_KEY), "categories": cats, "region_code": p.region,
           "occurred_at": at}
    if "household_income_fen" in fields:
        whole, cents = p.yuan.split(".")
        out["household_income_fen"] = int(whole) * 100 + int(cents)
    return out


def check_topic(bootstrap: str, topic: str, fmt: Format, cfg_path: Path, n: int, bad_every: int, seed: int,
                sample: int) -> tuple[int, str]:
    """(records on the topic, verdict); raises BenchError on any difference (see the module doc)."""
    from hub import codec
    from hub.identity import find_id_numbers, is_person_token
    from hub.processors.convert import json_safe

    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    records = asyncio.run(_read_all(bootstrap, topic))
    good = [p for p in persons(n, bad_every, seed, CSV_CATEGORIES if fmt.name == "csv" else XLSX_CATEGORIES)
            if p.good]
    if len(records) != len(good):
        raise BenchError(f"{len(records):,} records on {topic}, expected {len(good):,} (one per good row)")
    by_token: dict[str, dict[str, Any]] = {}
    leaks = 0
    for key, value in records:
        _schema, decoded = codec.decode(value or b"")
        decoded = json_safe(decoded)
        token = decoded.get("person_token")
        if not is_person_token(token) or key != token.encode():
            raise BenchError(f"a record's key/person_token is not a person token: {key!r}")
        leaks += sum(len(find_id_numbers(s)) for s in _strings(decoded) if not is_person_token(s))
        by_token[token] = decoded
    if leaks:
        raise BenchError(f"{leaks} valid ID number(s) found in the records' strings")
    if len(by_token) != len(good):
        raise BenchError(f"{len(good) - len(by_token):,} persons appear twice on {topic}")
    rng = random.Random(seed + 1)
    wrong = []
    for p in rng.sample(good, min(sample, len(good))):
        want = expected_value(fmt, cfg, p)
        got = by_token.get(want["person_token"])
        if got is None or any(got.get(k) != v for k, v in want.items()):
            wrong.append((p.n, want, {k: (got or {}).get(k) for k in want}))
    if wrong:
        raise BenchError(f"{len(wrong)} of {sample} sampled rows differ, first: row {wrong[0][0]}: expected "
                         f"{wrong[0][1]}, found {wrong[0][2]}")
    return len(records), (f"{len(records):,} records = good rows; no ID number in any record; {sample:,} sampled rows "
                          "= their values")


def dead_letters(bootstrap: str, source: str) -> tuple[int, int]:
    """(dead letters from ``source``, of which with an encrypted original)."""
    from hub import codec

    n = encrypted = 0
    for _key, value in asyncio.run(_read_all(bootstrap, "hub.dead-letters.v1")):
        _schema, record = codec.decode(value or b"")
        if record.get("source") == source:
            n += 1
            encrypted += bool(record.get("original_encrypted"))
    return n, encrypted


# ------------------------------------------------------------------------------------------ one run


def run_format(fmt: Format, args: argparse.Namespace, table: Table) -> Row:
    """Broker, inbox, ``hub connector run --once``, checks (see the module doc)."""
    from hub.broker import EmbeddedBroker, ensure_topics, free_port

    source = roster_file(fmt, args.files, args.rows, args.bad_every, args.seed)
    with row(f"{fmt.name.upper()} roster → {yaml.safe_load((EXAMPLES / fmt.example).read_text())['topic']}") as r, \
            tempfile.TemporaryDirectory(prefix="bench-roster-") as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        ensure_topics(broker.bootstrap)
        inbox = tmp / "inbox"
        inbox.mkdir()
        dropped = inbox / ("花名册" + fmt.suffix if fmt.name == "csv" else "信息表" + fmt.suffix)
        shutil.copyfile(source, dropped)
        os.utime(dropped, (time.time() - 60, time.time() - 60))
        cfg_path = bench_config(fmt, inbox, tmp / "config.yaml", args.batch_size, args.workers)
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        cmd = [sys.executable, "-m", "hub.cli", "connector", "run", str(cfg_path), "--once"]
        r.command = f"hub connector run {fmt.example} (inbox: the generated roster) --once"
        env = {**os.environ, "HUB_BROKER": f"kafka://{broker.bootstrap}", "HUB_PSEUDONYM_KEY": BENCH_KEY,
               "HUB_EDGE_KEY": BENCH_EDGE_KEY, "HUB_METRICS_PORT": str(free_port())}
        broker_cpu0 = cpu_seconds(broker.pid)
        say(f"{fmt.name}: hub connector run … ({args.rows:,} rows)")
        started = time.perf_counter()
        with (tmp / "connector.log").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=die_with_parent)  # noqa: PLW1509
        sampler = spy(proc.pid, args.profile / f"{fmt.name}.raw") if args.profile else None
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            stop_spy(sampler)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        broker_cpu = (cpu_seconds(broker.pid) or 0.0) - (broker_cpu0 or 0.0)
        output = (tmp / "connector.log").read_text(errors="replace")
        if args.profile and (args.profile / f"{fmt.name}.raw").exists():
            (args.profile / f"{fmt.name}.txt").write_text(summarize_stacks(args.profile / f"{fmt.name}.raw") + "\n")
            say(f"profile: {args.profile / f'{fmt.name}.txt'}")
        if proc.returncode != 0:
            raise BenchError(f"hub connector run exited with {proc.returncode}:\n{output[-3000:]}")
        expected_bad = args.rows // args.bad_every if args.bad_every else 0
        r.figures.update(rows=args.rows, mb=source.stat().st_size / 1e6, seconds=seconds, rate=args.rows / seconds,
                         cpu_us=(usage.ru_utime + usage.ru_stime) / args.rows * 1e6,
                         broker_us=broker_cpu / args.rows * 1e6, rss_mb=usage.ru_maxrss / 1024, target=fmt.target_s)
        say(f"{fmt.name}: {seconds:.1f} s; checking …")
        produced, verdict = check_topic(broker.bootstrap, cfg["topic"], fmt, cfg_path, args.rows, args.bad_every,
                                        args.seed, args.sample)
        rejected, encrypted = dead_letters(broker.bootstrap, cfg["name"])
        if rejected != expected_bad or encrypted != rejected:
            raise BenchError(f"{rejected:,} dead letters ({encrypted:,} encrypted), expected {expected_bad:,} "
                             "(one per bad row, each encrypted)")
        r.figures.update(produced=produced, rejected=rejected)
        r.check = verdict + f"; {rejected:,} dead letters = bad rows, all encrypted"
        moved = list((inbox / "processed").glob("*"))
        from connectors.sdk.parallel import default_workers

        workers = cfg.get("workers", default_workers())
        r.note = (f"{'within' if seconds <= fmt.target_s else 'OVER'} the {fmt.target_s:.0f} s target; "
                  f"{workers} mapping worker process(es); batch_size {cfg.get('batch_size', 500)}; file moved aside: "
                  f"{bool(moved)}; "
                  f"{json.dumps(output.strip().splitlines()[-1:], ensure_ascii=False)}")
    return r


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", action="append", choices=sorted(FORMATS), default=None,
                    help="csv and/or xlsx (repeatable; default both)")
    ap.add_argument("--bad-every", type=int, default=1000, help="one row in N has a mistyped ID number (0: none)")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--sample", type=int, default=2000, help="rows compared field by field with the records")
    ap.add_argument("--batch-size", type=int, default=None, help="override the example's batch_size (commit every N)")
    ap.add_argument("--workers", type=int, default=None,
                    help="override file_drop's worker processes (default: the connector's own, cores − 1)")
    ap.add_argument("--files", type=Path, default=Path(tempfile.gettempdir()) / "hub-bench-rosters",
                    help="where generated rosters are kept between runs")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the connector process; reports here")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    args.files.mkdir(parents=True, exist_ok=True)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    table = Table(f"Roster bulk load — {args.rows:,} rows through file_drop", command_line(argv), COLUMNS)
    table.notes.append(f"one row in {args.bad_every:,} has a mistyped ID number (a dead letter by design); the clock "
                       "runs from starting `hub connector run` to its exit (start-up included)")
    try:
        for name in args.format or ["csv", "xlsx"]:
            table.add(run_format(FORMATS[name], args, table))
    finally:
        print(table.markdown())
        table.write_json(args.json)
    return 0 if all(r.ok for r in table.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
