"""Sample CDR archives: a generated one with known ground truth, and odd real-world files.

:func:`generate_archive` writes what a recording server leaves on disk (PROTOCOL.md's
simulator layout ``<root>/<location>/<YYYY>/<MM>/<DD>/<id>.xml`` beside ``<id>.wav``,
or ``<id>.txt`` for an IM session) using the traffic model of :mod:`recstats.sim.traffic`,
and returns the calls table a correct reader must produce from it.

:func:`odd_cases` are hand-written documents a real archive may contain: fields as
attributes, a BOM, escaped text, a namespace, nested ``shared_item``, unknown codes, and
broken or hostile files (truncated, empty, binary, DTD tricks). ``data/samples/odd``
holds them, and its README says what each must give.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from lxml import etree

from .._table import calls_frame, coerce_calls, empty_calls
from .._xml import call_element
from ..cdr import record_from_fields
from .traffic import generate_calls, office_hours_profile

__all__ = ["generate_archive", "odd_cases", "write_odd_cases"]

#: Stand-in media contents: a few bytes, enough to pair by name.
WAV_STAND_IN = b"RIFF\x04\x00\x00\x00WAVE"
TRANSCRIPT_STAND_IN = b"[IM transcript stand-in]\n"


def _mean_profile(start: pd.Timestamp, seconds: float, tz: str) -> float:
    # the profile's mean over the window (per minute), to aim the rate at a call count
    minutes = pd.date_range(start, periods=max(1, int(seconds // 60)), freq="min")
    local = minutes.tz_convert(tz)
    hours = local.hour + local.minute / 60.0
    return float(np.mean(office_hours_profile(hours.to_numpy(), local.day_of_week.to_numpy())))


def generate_archive(root: str | os.PathLike, *, calls: int = 400,
                     sites: tuple[str, ...] = ("NY-RECORDER", "LDN-RECORDER"),
                     days: int = 5, seed: int = 2026, start: str = "2026-11-02",
                     tz: str = "UTC", mean_holding: float = 180.0) -> pd.DataFrame:
    """Write a sample CDR archive under ``root`` and return its ground-truth calls table.

    Exactly ``calls`` calls over ``days`` days from ``start`` (local midnight in ``tz``,
    the sites' zone, in which CDR times are written), spread over ``sites`` with office
    hours traffic (:func:`recstats.sim.traffic.office_hours_profile`). Each site has its
    own extensions (1000.., 2000.., ...). Files: ``<root>/<site>/<YYYY>/<MM>/<DD>/<id>.xml``
    (local date of the start) beside ``<id>.wav`` (``<id>.txt`` for IM), a few bytes
    each. The same seed gives the same files.

    The result is what :func:`recstats.read_archive` (with ``tz``) must return: the
    calls table with ``media_path`` and ``cdr_path`` (``root`` joined as given), sorted
    by start time, call id and path.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     truth = generate_archive(root, calls=20, days=1, seed=1)
    >>> len(truth), sorted(truth.site.unique())
    (20, ['LDN-RECORDER', 'NY-RECORDER'])
    """
    if calls < 0 or days <= 0 or not sites:
        raise ValueError("need calls >= 0, days > 0 and at least one site")
    root = os.fspath(root)
    origin = pd.Timestamp(start).tz_localize(tz) if pd.Timestamp(start).tzinfo is None \
        else pd.Timestamp(start)
    origin = origin.tz_convert("UTC")
    seconds = days * 86400.0
    mean = _mean_profile(origin, seconds, tz)
    pool: list[dict[str, str]] = []
    headroom = 1.5  # draw more than needed, then thin uniformly: the shape is kept
    while len(pool) < calls:
        rate = headroom * max(calls, 1) / (len(sites) * seconds * mean)
        pool = []
        for i, site in enumerate(sites):
            pool += generate_calls(origin, seconds, rate=rate, mean_holding=mean_holding,
                                   extensions=range(1000 * (i + 1), 1000 * (i + 1) + 50),
                                   location=site, rng=np.random.default_rng([seed, i]),
                                   profile=office_hours_profile, tz=tz)
        headroom *= 2
    rng = np.random.default_rng([seed, len(sites)])
    keep = np.sort(rng.choice(len(pool), size=calls, replace=False))
    records = []
    for fields in (pool[k] for k in keep):
        folder = os.path.join(root, fields["location"], *fields["start_time"][:10].split("-"))
        os.makedirs(folder, exist_ok=True)
        cdr_path = os.path.join(folder, f"{fields['id']}.xml")
        media_path = os.path.join(folder, fields["media_file"])
        with open(cdr_path, "wb") as handle:
            handle.write(etree.tostring(call_element(fields, "verbacdr"), encoding="UTF-8",
                                        xml_declaration=True, pretty_print=True))
        with open(media_path, "wb") as handle:
            handle.write(TRANSCRIPT_STAND_IN if media_path.endswith(".txt")
                         else WAV_STAND_IN)
        record = record_from_fields(fields, tz=tz, finished=True)
        record["media_path"], record["cdr_path"] = media_path, cdr_path
        records.append(record)
    truth = calls_frame(records) if records else coerce_calls(
        empty_calls().assign(end_unknown=pd.Series([], dtype=bool),
                             media_path=pd.Series([], dtype="str"),
                             cdr_path=pd.Series([], dtype="str")))
    return truth.sort_values(["start_time", "call_id", "cdr_path"], kind="stable",
                             na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------- odd files

_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _doc(body: str) -> bytes:
    return _DECL + body.encode("utf-8")


def odd_cases() -> dict[str, bytes]:
    """Odd and broken CDR files (name -> bytes), as written to ``data/samples/odd``.

    ``data/samples/README.md`` tabulates what :func:`recstats.read_archive` gives for
    each. Hostile ones point at ``/etc/passwd`` or a closed local port; a safe reader
    neither reads nor fetches them.

    >>> cases = odd_cases()
    >>> cases["empty.xml"], cases["bom.xml"][:3]
    (b'', b'\\xef\\xbb\\xbf')
    """
    times = ("<start_time>2026-11-02 09:00:00</start_time>"
             "<end_time>2026-11-02 09:01:30.500</end_time>")
    return {
        "attributes.xml": _doc(
            '<verbacdr id="odd-attributes" location="NY-RECORDER" modality_id="voice" '
            'source_caller_id="1000" destination_caller_id="1001" '
            'start_time="2026-11-02 09:00:00" end_time="2026-11-02 09:01:00" '
            'direction_id="0" cause_id="0" audio_codec_id="2"/>\n'),
        "minimal.xml": _doc(
            "<verbacdr><id>odd-minimal</id><modality_id>voice</modality_id>"
            "<native_id>77</native_id><native_call_id>77@ny</native_call_id>"
            "<location>NY-RECORDER</location><source_caller_id>1000</source_caller_id>"
            "</verbacdr>\n"),
        "im-session.xml": _doc(
            "<verbacdr><id>odd-im</id><modality_id>im</modality_id>"
            "<location>LDN-RECORDER</location><source_caller_id>2001</source_caller_id>"
            f"{times}<direction_id>0</direction_id></verbacdr>\n"),
        "im-session.txt": b"[09:00:01] 2001: hello\n",
        "ccdr-id.xml": _doc(
            "<cdr><ccdr_id>odd-ccdr</ccdr_id><location>NY-RECORDER</location>"
            f"{times}</cdr>\n"),
        "bom.xml": b"\xef\xbb\xbf" + _doc(
            "<verbacdr><id>odd-bom</id><location>LDN-RECORDER</location>"
            "<source_name>Dániel Kovács</source_name></verbacdr>\n"),
        "escaped.xml": _doc(
            "<verbacdr><id>odd-escaped</id><location>NY-RECORDER</location>"
            "<source_name>Smith &amp; Sons &lt;Sales&gt;</source_name>"
            "<destination_name>Ren&#233;e <![CDATA[& Co]]></destination_name></verbacdr>\n"),
        "extra-fields.xml": _doc(
            "<verbacdr><id>odd-extra</id><location>NY-RECORDER</location>"
            "<customer_ref>ABC-123</customer_ref><recorded_party>1000</recorded_party>"
            "<ondemand>1</ondemand><manual>false</manual></verbacdr>\n"),
        "shared-item.xml": _doc(
            "<verbacdr><id>odd-meeting</id><location>NY-RECORDER</location>"
            "<modality_id>share</modality_id><meeting_id>m-42</meeting_id>"
            "<shared_item><id>item-7</id><publisher>1000</publisher>"
            "<title>Q4 plan</title></shared_item></verbacdr>\n"),
        "namespaced.xml": _doc(
            '<v:verbacdr xmlns:v="urn:example:verba"><v:id>odd-namespaced</v:id>'
            "<v:location>NY-RECORDER</v:location></v:verbacdr>\n"),
        "unknown-codes.xml": _doc(
            "<verbacdr><id>odd-codes</id><location>NY-RECORDER</location>"
            "<cause_id>99</cause_id><audio_codec_id>77</audio_codec_id>"
            "<direction_id>PSTN In</direction_id></verbacdr>\n"),
        "orphan.wav": WAV_STAND_IN,
        # broken and hostile
        "truncated.xml": _doc("<verbacdr><id>odd-truncated</id><location>NY-REC"),
        "empty.xml": b"",
        "binary.xml": bytes(range(256)),
        "not-a-cdr.xml": _doc("<html><body><p>not a CDR</p></body></html>\n"),
        "bad-time.xml": _doc(
            "<verbacdr><id>odd-bad-time</id><start_time>yesterday</start_time></verbacdr>\n"),
        "external-entity.xml": _doc(
            '<!DOCTYPE verbacdr [<!ENTITY leak SYSTEM "file:///etc/passwd">]>\n'
            "<verbacdr><id>odd-xxe</id><source_name>&leak;</source_name></verbacdr>\n"),
        "external-dtd.xml": _doc(
            '<!DOCTYPE verbacdr SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
            "<verbacdr><id>odd-dtd</id></verbacdr>\n"),
        "entity-bomb.xml": _doc(
            '<!DOCTYPE verbacdr [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                      for p, c in zip("abcdefgh", "bcdefghi"))
            + "]>\n<verbacdr><id>&i;</id></verbacdr>\n"),
    }


def write_odd_cases(folder: str | os.PathLike) -> list[Path]:
    """Write :func:`odd_cases` into ``folder`` (created); returns the paths written.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     names = sorted(p.name for p in write_odd_cases(folder))
    >>> "truncated.xml" in names and "orphan.wav" in names
    True
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in odd_cases().items():
        (folder / name).write_bytes(data)
        written.append(folder / name)
    return written
