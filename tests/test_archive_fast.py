"""The archive reader's fast path and worker pool against the reference reader.

The reference is :func:`recstats._archive_parse._parse_chunk` (lxml tree and one dict
per document, the reader before the fast path): every test here compares the fast
path's table, attrs and error reasons with it, on generated archives, on every odd and
hostile file we have and on random documents.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recstats as rs
from recstats import _archive_parse, _archive_pool, _archive_run, _fastparse, _table, archive
from recstats.sim.samples import generate_archive, odd_cases


def _reference(source, **kwargs) -> pd.DataFrame:
    """read_archive with the reference chunk parser, in this process."""
    fast = archive.parse_chunk
    archive.parse_chunk = _archive_parse._parse_chunk
    try:
        return rs.read_archive(source, progress=False, workers=1, **kwargs)
    finally:
        archive.parse_chunk = fast


def _same(calls: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(calls, expected)
    assert calls.attrs == expected.attrs


def _chunk(documents: list[bytes]) -> tuple:
    return "blobs", "mem", [(f"mem/{i:03}.xml", doc) for i, doc in enumerate(documents)]


def _frame(table) -> pd.DataFrame:
    """A chunk's table as read_archive finishes it (schema given once, at the end)."""
    frame = _table.coerce_calls(table.to_pandas())
    return frame.sort_values("cdr_path").reset_index(drop=True)


def _same_chunk(documents: list[bytes], tz: str = "UTC") -> tuple:
    """Fast and reference parse of one chunk agree; returns the fast result."""
    task = _chunk(documents)
    fast = _archive_run.parse_chunk(task, tz, None)
    reference = _archive_parse._parse_chunk(task, tz, None)
    pd.testing.assert_frame_equal(_frame(fast[0]), _frame(reference[0]))
    assert fast[1:] == reference[1:]
    return fast


@pytest.fixture
def count_reference(monkeypatch):
    """How many documents went through the reference path (lxml tree + dict)."""
    calls = []
    real = _archive_run.document_fields
    monkeypatch.setattr(_archive_run, "document_fields",
                        lambda data, path: calls.append(path) or real(data, path))
    return calls


# --------------------------------------------------------------------------- equality


def test_generated_archives_equal_the_reference(tmp_path, count_reference):
    for tz, seed in (("UTC", 1), ("America/New_York", 2)):
        root = tmp_path / tz.replace("/", "-")
        truth = generate_archive(root, calls=150, days=3, start="2026-10-31", tz=tz,
                                 seed=seed)
        calls = rs.read_archive(root, progress=False, workers=1, tz=tz)
        _same(calls, _reference(root, tz=tz))
        pd.testing.assert_frame_equal(calls, truth)
    # plain generated CDRs never need the reference path: the fast path is really used
    assert count_reference == []


def test_odd_samples_equal_the_reference(samples_dir, tmp_path):
    odd = samples_dir / "odd"
    _same(rs.read_archive(odd, progress=False, workers=1), _reference(odd))
    # each odd file next to plain ones, in one batch: neighbours keep their rows
    for name in sorted(p.name for p in odd.iterdir() if p.suffix == ".xml"):
        folder = tmp_path / name
        generate_archive(folder, calls=5, days=1, seed=3)
        (folder / name).write_bytes((odd / name).read_bytes())
        calls = rs.read_archive(folder, progress=False, workers=1)
        _same(calls, _reference(folder))
        assert calls.attrs["parsed"] >= 5, name


def test_hostile_documents_equal_the_reference(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    uri = secret.as_uri()
    docs = {
        "xxe.xml": f'<!DOCTYPE v [<!ENTITY s SYSTEM "{uri}">]><v><id>x1</id>'
                   f"<source_name>&s;</source_name></v>",
        "dtd.xml": f'<!DOCTYPE v SYSTEM "{uri}"><v><id>x3</id></v>',
        "undeclared.xml": "<v><id>x5</id><source_name>&s;</source_name></v>",
        "xinclude.xml": '<v xmlns:xi="http://www.w3.org/2001/XInclude"><id>x6</id>'
                        f'<xi:include href="{uri}" parse="text"/></v>',
        "prefix.xml": "<v><xi:id>x7</xi:id></v>",  # undeclared prefix: an error
        "utf16.xml": '<!DOCTYPE v [<!ENTITY e "x">]><v><id>a</id></v>',
        "deep.xml": "<v><id>x8</id>" + "<a>" * 300 + "</a>" * 300 + "</v>",
        "twice.xml": "<v><id>x9</id></v><v><id>x10</id></v>",
        "text.xml": "<v><id>x11</id></v>junk",
        "pi.xml": "<v><?pi x?><id>x12</id></v>",
        "nul.xml": "<v><id>x13\x00</id></v>",
    }
    for name, text in docs.items():
        data = text.encode("utf-16" if name == "utf16.xml" else "utf-8")
        (tmp_path / name).write_bytes(data)
    (tmp_path / "ok.xml").write_bytes(b"<v><id>ok</id></v>")
    paths = sorted(str(p) for p in tmp_path.glob("*.xml"))
    calls = rs.read_archive(paths, progress=False, workers=1)
    _same(calls, _reference(paths))
    assert "TOP-SECRET-7f3a9c" not in calls.to_json(date_format="iso") + str(calls.attrs)
    assert {"ok", "x6"} <= set(calls.call_id)


def test_fields_named_like_the_archive_columns_never_replace_them(tmp_path):
    # a document's own cdr_path, media_path or end_unknown field must not become a
    # second column of that name, nor the value: the archive's facts are the reader's
    for name, end in (("a", ""), ("b", "<end_time>2026-11-02 09:05:00</end_time>")):
        (tmp_path / f"{name}.xml").write_text(
            f"<verbacdr><id>{name}</id><start_time>2026-11-02 09:00:00</start_time>{end}"
            "<cdr_path>/etc/passwd</cdr_path><media_path>elsewhere.wav</media_path>"
            "<end_unknown>false</end_unknown></verbacdr>")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    for source in (tmp_path, sorted(str(p) for p in tmp_path.glob("*.xml"))):
        calls = rs.read_archive(source, progress=False, workers=1)
        _same(calls, _reference(source))
        assert list(calls.columns).count("cdr_path") == 1
        by_id = calls.set_index("call_id").loc[["a", "b"]]
        assert by_id["cdr_path"].tolist() == [str(tmp_path / "a.xml"), str(tmp_path / "b.xml")]
        assert by_id["media_path"].iloc[0] == str(tmp_path / "a.wav")
        assert pd.isna(by_id["media_path"].iloc[1])
        assert by_id["end_unknown"].tolist() == [True, False]


def test_a_bad_batch_is_read_file_by_file(count_reference):
    good = [f"<v><id>g{i}</id><location>NY</location></v>".encode() for i in range(100)]
    fast = _same_chunk(good[:50] + [b"<v><id>bad</v>"] + good[50:])
    # the batch failed its syntax check: halved down to small batches, whose documents
    # took the reference path; all good neighbours are rows, the bad one an error
    assert "mem/050.xml" in count_reference
    assert len(count_reference) <= _fastparse.SMALLEST_BATCH
    assert fast[0].num_rows == 100 and len(fast[1]) == 1
    assert "mismatch" in fast[1][0][1]
    count_reference.clear()
    _same_chunk(good)
    assert count_reference == []


def test_unusual_documents_take_the_reference_path(count_reference):
    unusual = {
        b'<v id="a"><x>1</x></v>': "attribute",
        b"<v><id>a</id><s><t>1</t></s></v>": "nesting",
        b"<v><id>a</id><x>1</x><x>2</x></v>": "repeated field",
        b"<v><id>a &amp; b</id></v>": "entity",
        b"<v><id><![CDATA[a]]></id></v>": "CDATA",
        b"<v><!-- c --><id>a</id></v>": "comment",
        b"\xef\xbb\xbf<v><id>a</id></v>": "BOM",
        b"<?xml version='1.0' encoding='ISO-8859-1'?><v><id>a</id></v>": "encoding",
        b"<v><id>a\r\nb</id></v>": "carriage return",
        "<v><id>\u00a0a\u00a0</id></v>".encode(): "Unicode space at an edge",
        b"<v><id>a</id></v>\n<!-- end -->": "comment after the root",
        b"<v><id >a</id ></v>": "space in a tag",
        b"<v><!-- <x> --><id>a</id></v>": "a comment that looks like a tag",
        b"<v><id>a</id><?pi >?></v>": "processing instruction",
    }
    fast = _same_chunk(list(unusual))
    assert len(count_reference) == len(unusual)
    assert fast[0].num_rows == len(unusual)
    count_reference.clear()
    plain = [b"<v>\n  <id> a </id>\n  <x/>\n  <y></y>\n</v>\n",
             "<?xml version='1.0' encoding='utf-8'?><v><id>Győr é</id></v>".encode(),
             b'<?xml version="1.0"?>\n<v><id>c>d</id></v>']
    _same_chunk(plain)
    assert count_reference == []


def test_oversized_documents_are_bounded(count_reference, monkeypatch):
    monkeypatch.setattr(_archive_run, "FAST_MAX_BYTES", 100)
    monkeypatch.setattr(_archive_run, "BATCH_BYTES", 200)
    small = b"<v><id>s</id></v>"
    large = b"<v><id>l</id><note>" + b"x" * 200 + b"</note></v>"
    _same_chunk([small] * 30 + [large])
    assert count_reference == ["mem/030.xml"]


_TEXTS = st.sampled_from(["1000", " padded ", "", "a=b", "x &amp; y", "Győr", "é",
                          "<![CDATA[c]]>", "&#233;", "   ", "two\nlines", "a>b", "\u2003x",
                          "2026-11-02 09:00:00", "2026-13-02 09:00:00", "6", "true"])
_NAMES = st.sampled_from(["id", "location", "start_time", "end_time", "cause_id",
                          "ondemand", "tag", "v:id", "ccdr_id", "duration"])


@st.composite
def _documents(draw):
    children = []
    for _ in range(draw(st.integers(0, 6))):
        name, text = draw(_NAMES), draw(_TEXTS)
        kind = draw(st.integers(0, 12))
        if kind == 0:
            children.append(f"<{name}><sub>{text}</sub></{name}>")
        elif kind == 1:
            children.append(f'<{name} a="1">{text}</{name}>')
        elif kind == 2:
            children.append(f"<!-- c -->{text}")
        elif kind == 3:
            children.append(f"<{name}/>")
        else:
            children.append(f"<{name}>{text}</{name}>")
    root = draw(st.sampled_from(["verbacdr", "verbacdr", 'verbacdr id="r"',
                                 'v xmlns="urn:x"']))
    body = f"<{root}>{''.join(children)}</{root.split()[0]}>"
    prefix = draw(st.sampled_from([
        "", "", '<?xml version="1.0" encoding="UTF-8"?>\n', "<?xml version='1.0'?>",
        '<?xml version="1.0" encoding="ISO-8859-1"?>', "\ufeff", "\n",
        '<!DOCTYPE verbacdr [<!ENTITY e "x">]>', "junk", '<?xml version="1.1"?>']))
    suffix = draw(st.sampled_from(["", "", "\n", "<!-- end -->", "<extra/>", "tail"]))
    data = (prefix + body + suffix).encode("utf-8")
    cut = draw(st.integers(0, 8))
    return data[:-cut] if cut > 5 and len(data) > cut else data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(_documents(), min_size=1, max_size=6),
       tz=st.sampled_from(["UTC", "Europe/Budapest"]))
def test_random_documents_equal_the_reference(documents, tz):
    _same_chunk(documents, tz)


# --------------------------------------------------------------------------- workers


@pytest.fixture
def pool_always(monkeypatch):
    """Workers for any size (the break-even would keep test archives in-process)."""
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "MAX_CHUNK", 16)
    monkeypatch.setattr(archive, "UNIT_FILES", 4)  # many units, shared by the processes


def test_workers_equal_one_process_on_every_container(small_archive, tmp_path,
                                                      pool_always, monkeypatch):
    root, _ = small_archive
    for name, data in odd_cases().items():
        (root / name).write_bytes(data)
    one = rs.read_archive(root, workers=1, progress=False)
    _same(one, _reference(root))
    zipped = tmp_path / "all.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root).as_posix())
    tarred = tmp_path / "all.tar"
    with tarfile.open(tarred, "w") as tf:
        tf.add(root, arcname=".")
    _same(rs.read_archive(root, workers=2, progress=False), one)  # the pool starts
    assert _archive_pool._state["ready"].wait(timeout=120)
    _same(rs.read_archive(root, workers=2, progress=False), one)  # and gets chunks
    assert _archive_pool.warm(1)
    pool = _archive_pool._state["pool"]
    for source in (zipped, tarred):
        for workers in (1, 2):
            calls = rs.read_archive(source, workers=workers, progress=False)
            assert calls.attrs["errors"] == [
                {**e, "path": e["path"].replace(str(root), str(source))}
                for e in one.attrs["errors"]]
            assert len(calls) == len(one)
    assert _archive_pool._state["pool"] is pool  # one persistent pool per process
    assert _archive_pool.POOL_CPU_SECONDS[0] > 0  # and it did parse chunks


def test_dead_workers_fall_back_with_one_warning(small_archive, pool_always, monkeypatch):
    root, _ = small_archive
    one = rs.read_archive(root, workers=1, progress=False)
    rs.read_archive(root, workers=2, progress=False)
    assert _archive_pool._state["ready"].wait(timeout=120)  # the pool is up
    assert _archive_pool.warm(1)
    for process in _archive_pool._state["pool"]._processes.values():
        process.kill()
        process.join(timeout=30)
    with pytest.warns(RuntimeWarning, match="worker processes failed") as caught:
        calls = rs.read_archive(root, workers=2, progress=False)
    assert len([w for w in caught if "worker" in str(w.message)]) == 1
    _same(calls, one)
    with warnings.catch_warnings():  # a new pool next time
        warnings.simplefilter("error")
        _same(rs.read_archive(root, workers=2, progress=False), one)


def test_small_inputs_stay_in_process(small_archive, monkeypatch):
    root, _ = small_archive
    used = []
    monkeypatch.setattr(archive, "_run_pool", lambda *a: used.append(a) or iter(()))
    for workers in (None, 2, 8):  # 60 files: under any break-even
        assert len(rs.read_archive(root, workers=workers, progress=False)) == 60
    assert used == []


def test_unguarded_script_runs_once_and_uses_its_workers(small_archive, tmp_path):
    root, _ = small_archive
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import recstats as rs\n"
        "from recstats import _archive_pool\n"
        "rs.archive.IN_PROCESS_BELOW = rs.archive.COLD_IN_PROCESS_BELOW = 0\n"
        "rs.archive.MAX_CHUNK = 4\n"
        "print('script runs')\n"
        f"df = rs.read_archive({str(root)!r}, workers=2, progress=False)\n"
        "assert _archive_pool._state['ready'].wait(timeout=120)\n"
        f"df = rs.read_archive({str(root)!r}, workers=2, progress=False)\n"
        "print('rows', len(df), 'pool', _archive_pool.POOL_CPU_SECONDS[0] > 0)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(rs.__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["script runs", "rows 60 pool True"]
    assert done.stderr == ""
