"""recstats.cdr: field decoding, enum tables, values, time zones, and per-record ==
vectorised. Expected values are typed from PROTOCOL.md or computed by hand."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from recstats import CDRParseError, _schema, _table, _time, _xml, cdr, read_cdr

# --------------------------------------------------------------------------- PROTOCOL.md
# typed from PROTOCOL.md, independently of recstats/cdr.py
PROTOCOL_CAUSES = """0 Normal, 1 Source disconnected, 2 Destination disconnected,
3 Hold, 4 Transfer, 5 Cancelled, 6 Busy, 7 Not found, 8 Error, 13 Conference, 14 Call park,
15 Join, 28 Direct transfer, 60 Line change, 80 Timeout, 81 Forced termination,
82 Manual termination, 83 Program termination, 84 Video escalation, 500 Undefined"""
PROTOCOL_CODECS = """1 Non-standard, 2 G.711 A-law 64k, 3 G.711 A-law 56k, 4 G.711 µ-law 64k,
5 G.711 µ-law 56k, 6 G.722 64k, 7 G.722 56k, 8 G.722 48k, 9 G.723.1, 10 G.728, 11 G.729,
12 G.729A, 13 IS11172, 14 IS13818, 15 G.729B, 16 G.729AB, 18 GSM FR, 19 GSM HR, 20 GSM EFR,
25 Wideband 256k, 32 Data 64k, 33 Data 56k, 80 GSM, 81 ActiveVoice, 82 G.726 32k,
83 G.726 24k, 84 G.726 16k, 90 iLBC 20ms, 91 iLBC 30ms"""
PROTOCOL_MODALITIES = ["voice", "video", "screen", "share", "im", "file_share", "poll",
                       "whiteboard", "sms"]


def _enum_table(text: str) -> dict[str, str]:
    out = {}
    for item in " ".join(text.split()).split(", "):
        code, name = item.split(" ", 1)
        out[code] = name
    return out


def _doc(body: str) -> bytes:
    return f"<verbacdr><id>c1</id>{body}</verbacdr>".encode()


def test_enum_tables_match_protocol_exactly():
    assert _schema.CAUSES == _enum_table(PROTOCOL_CAUSES)
    assert len(_schema.CAUSES) == 20
    assert _schema.AUDIO_CODECS == _enum_table(PROTOCOL_CODECS)
    assert len(_schema.AUDIO_CODECS) == 29
    assert _schema.DIRECTIONS == {"0": "Internal", "1": "Inbound", "2": "Outbound"}
    assert list(_schema.MODALITIES) == PROTOCOL_MODALITIES


@pytest.mark.parametrize("field,column,table", [
    ("cause_id", "cause", _enum_table(PROTOCOL_CAUSES)),
    ("audio_codec_id", "audio_codec", _enum_table(PROTOCOL_CODECS)),
    ("direction_id", "direction", {"0": "Internal", "1": "Inbound", "2": "Outbound"}),
])
def test_every_code_decodes_through_both_paths(field, column, table):
    rows = [{"id": f"c{code}", field: code} for code in table]
    frame, rejected = _table.calls_from_fields(rows)
    assert rejected == {}
    assert frame[column].astype(str).tolist() == list(table.values())
    assert frame[field].tolist() == list(table)
    for code, name in table.items():
        record = read_cdr(_doc(f"<{field}>{code}</{field}>"))
        assert record[column] == name
        assert record[field] == code


def test_unknown_codes_and_names():
    record = read_cdr(_doc("<cause_id>99</cause_id><audio_codec_id>17</audio_codec_id>"
                           "<direction_id>PSTN In</direction_id>"))
    assert record["cause"] == "Unknown (99)"
    assert record["audio_codec"] == "Unknown (17)"  # 17 is a gap in the table
    assert record["direction"] == "PSTN In"  # newer servers write names
    assert cdr.decode_enum("006", _schema.CAUSES) == "Busy"  # leading zeros
    assert cdr.decode_enum("-1", _schema.CAUSES) == "Unknown (-1)"


def test_directions_override():
    record = read_cdr(_doc("<direction_id>3</direction_id>"),
                      directions={"3": "PSTN Out"})
    assert record["direction"] == "PSTN Out"
    frame, _ = _table.calls_from_fields([{"id": "a", "direction_id": "3"}],
                                     directions={"3": "PSTN Out"})
    assert frame["direction"].tolist() == ["PSTN Out"]


@pytest.mark.parametrize("raw,expected", [
    ("true", True), ("false", False), ("1", True), ("0", False), ("TRUE", True),
    (" False ", False), ("yes", True), ("no", False), ("maybe", None), (None, None),
])
def test_booleans(raw, expected):
    assert cdr.parse_bool(raw) is expected


def test_boolean_fields_in_table():
    frame, _ = _table.calls_from_fields([{"id": "a", "ondemand": "1", "manual": "false"},
                                      {"id": "b", "ondemand": "false"}])
    assert str(frame["ondemand"].dtype) == "boolean"
    assert frame["ondemand"].tolist() == [True, False]
    assert bool(frame["manual"].iloc[0]) is False
    assert pd.isna(frame["manual"].iloc[1])


# --------------------------------------------------------------------------- fields


def test_renames_and_children():
    record = read_cdr(b"""<verbacdr><id>g1</id><location>NY</location>
        <source_caller_id>1000</source_caller_id><destination_caller_id>+3612</destination_caller_id>
        <source_name>Anna</source_name><destination_name>Bob</destination_name>
        <modality_id>voice</modality_id><custom>x</custom></verbacdr>""")
    assert (record["call_id"], record["site"], record["caller"], record["callee"],
            record["caller_name"], record["callee_name"], record["modality"]) == \
        ("g1", "NY", "1000", "+3612", "Anna", "Bob", "voice")
    assert record["custom"] == "x"
    assert "location" not in record and "source_caller_id" not in record


def test_attributes_equal_child_elements():
    as_children = read_cdr(b"<verbacdr><id>a</id><location>NY</location>"
                           b"<start_time>2026-11-02 09:00:00</start_time></verbacdr>")
    as_attributes = read_cdr(b'<verbacdr id="a" location="NY" '
                             b'start_time="2026-11-02 09:00:00"/>')
    pd.testing.assert_frame_equal(_table.calls_frame([as_children]),
                                  _table.calls_frame([as_attributes]))
    assert as_children["start_time"] == pd.Timestamp("2026-11-02 09:00", tz="UTC")


def test_ccdr_id_any_root_and_both_ids():
    assert read_cdr(b"<Call><ccdr_id>z9</ccdr_id></Call>")["call_id"] == "z9"
    both = read_cdr(b"<x><id>a</id><ccdr_id>b</ccdr_id></x>")
    assert both["call_id"] == "a" and both["ccdr_id"] == "b"


def test_oversized_file_reason_does_not_invent_a_size(tmp_path):
    # the reason said "document is 16777217 bytes" whatever the file's real size
    big = tmp_path / "big.xml"
    with open(big, "wb") as handle:
        handle.truncate(_xml.MAX_DOCUMENT_BYTES + 5000)
    with pytest.raises(CDRParseError, match="file is over the 16777216 byte limit"):
        read_cdr(big)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.timeout(20)
def test_read_cdr_refuses_a_fifo_instead_of_waiting(tmp_path):
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)  # read_cdr blocked forever waiting for a writer
    with pytest.raises(CDRParseError, match="not a regular file"):
        read_cdr(fifo)


def test_sources_element_tree_and_str_text(tmp_path):
    text = "<verbacdr><id>t1</id></verbacdr>"
    (tmp_path / "c.xml").write_text(text)
    assert read_cdr(tmp_path / "c.xml")["call_id"] == "t1"
    assert read_cdr(str(tmp_path / "c.xml"))["call_id"] == "t1"
    tree = etree.ElementTree(etree.fromstring(text))  # used to be a TypeError
    assert read_cdr(tree)["call_id"] == "t1"
    # XML text as str used to be taken for a file name: "cannot read file" + the document
    with pytest.raises(TypeError, match=r"pass bytes \(text.encode\(\)\)"):
        read_cdr(text)


def test_too_many_fields_are_refused_by_both_paths():
    # every distinct field is a column of the whole table: one 300 kB file with 20 000
    # fields turned a 51-file batch into 20 018 columns and 11 s
    limit = _xml.MAX_FIELDS
    ok = {"id": "a", **{f"f{i}": "x" for i in range(limit - 1)}}
    wide = {**ok, "one_more": "x"}
    assert len(cdr.record_from_fields(ok)) >= limit
    with pytest.raises(CDRParseError, match=f"{limit + 1} fields, over the {limit} limit"):
        cdr.record_from_fields(wide)
    frame, rejected = _table.calls_from_fields([wide, {"id": "b"}])
    assert frame["call_id"].tolist() == ["b"] and list(rejected) == [0]
    assert "one_more" not in frame.columns and "f0" not in frame.columns


def test_bom_and_escaped_characters():
    data = ("\ufeff<?xml version='1.0' encoding='UTF-8'?><verbacdr><id>a</id>"
            "<source_name>Smith &amp; Sons &lt;Sales&gt; &#233;</source_name>"
            "<destination_name><![CDATA[<b>&</b>]]></destination_name>"
            "<location>Győr</location></verbacdr>").encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    record = read_cdr(data)
    assert record["caller_name"] == "Smith & Sons <Sales> é"
    assert record["callee_name"] == "<b>&</b>"
    assert record["site"] == "Győr"


def test_nested_flattening_and_repeats():
    root = etree.fromstring(b"<c><id>x</id><shared_item kind='doc'><id>s1</id>"
                            b"<publisher>1000</publisher><meta><a>1</a></meta></shared_item>"
                            b"<tag>one</tag><tag>two</tag><empty/><blank>  </blank></c>")
    assert _xml.fields_of(root) == {
        "id": "x", "shared_item.kind": "doc", "shared_item.id": "s1",
        "shared_item.publisher": "1000", "shared_item.meta.a": "1", "tag": "one; two"}


def test_call_id_never_taken_from_nested_element():
    with pytest.raises(CDRParseError, match="no id"):
        read_cdr(b"<verbacdr><shared_item><id>s1</id></shared_item></verbacdr>")
    frame, rejected = _table.calls_from_fields(
        [_xml.fields_of(etree.fromstring(b"<c><x><ccdr_id>n</ccdr_id></x></c>"))])
    assert len(frame) == 0 and list(rejected) == [0]


def test_fields_named_like_columns_never_beat_documented_ones():
    # a foreign <call_id>/<site> never replaces id/location, nor blanks other rows
    rows = [{"id": "a", "call_id": "other", "site": "S"},
            {"site": "S", "id": "b", "location": "NY"}, {"id": "c", "location": "LDN"}]
    frame, _ = _table.calls_from_fields(rows)
    assert frame["call_id"].tolist() == ["a", "b", "c"]
    assert frame["site"].astype(str).tolist() == ["S", "NY", "LDN"]
    records = [cdr.record_from_fields(r) for r in rows]
    assert [r["call_id"] for r in records] == ["a", "b", "c"]
    assert [r["site"] for r in records] == ["S", "NY", "LDN"]


def test_duration_from_times_or_field():
    assert read_cdr(_doc("<start_time>2026-11-02 09:00:00</start_time>"
                         "<end_time>2026-11-02 09:02:03.250</end_time>"
                         "<duration>1</duration>"))["duration"] == 123.25
    assert read_cdr(_doc("<duration>42.5</duration>"))["duration"] == 42.5
    assert pd.isna(read_cdr(_doc(""))["duration"])


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"), (b"   \n", "empty"), (b"<verbacdr><id>a</id>", "malformed"),
    (b"\x00\x01binary", "XML"), (b"<html/>", "not a CDR"),
    (_doc("<start_time>soon</start_time>"), "not a time"),
    (b'<!DOCTYPE v [<!ENTITY e "x">]><v><id>&e;</id></v>', "DTD"),
])
def test_parse_errors(data, reason):
    with pytest.raises(CDRParseError, match=reason):
        read_cdr(data)


@pytest.mark.parametrize("data,reason", [
    (_doc("<x>" + "y" * 10_000_001 + "</x>"), "Text node too long (a safety limit)"),
    (_doc("<a>" * 300 + "</a>" * 300), "Excessive depth in document: 256 (a safety limit)"),
])
def test_parser_limits_are_named_as_limits(data, reason):
    # libxml2 says "try XML_PARSE_HUGE", an option a user cannot (and must not) set
    with pytest.raises(CDRParseError) as info:
        read_cdr(data)
    assert reason in str(info.value) and "XML_PARSE_HUGE" not in str(info.value)


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize("raw,tz,utc", [
    ("2026-11-02 09:15:02.120", "UTC", "2026-11-02 09:15:02.120"),
    ("2026-11-02 09:15:02", "UTC", "2026-11-02 09:15:02"),
    ("2026-11-02 09:15:02.120", "Europe/Budapest", "2026-11-02 08:15:02.120"),  # CET +1
    ("2026-07-01 12:00:00", "Europe/Budapest", "2026-07-01 10:00:00"),  # CEST +2
    ("2026-07-01 12:00:00", "America/New_York", "2026-07-01 16:00:00"),  # EDT -4
    # clocks forward 2026-03-29 02:00 -> 03:00: 02:30 does not exist -> 03:00 CEST
    ("2026-03-29 02:30:00", "Europe/Budapest", "2026-03-29 01:00:00"),
    # clocks back 2026-10-25 03:00 -> 02:00: 02:30 happens twice -> first (CEST, +2)
    ("2026-10-25 02:30:00", "Europe/Budapest", "2026-10-25 00:30:00"),
    # New York falls back 2026-11-01 02:00 -> 01:00: 01:30 twice -> first (EDT, -4)
    ("2026-11-01 01:30:00", "America/New_York", "2026-11-01 05:30:00"),
    ("2026-11-01 01:30:00+01:00", "America/New_York", "2026-11-01 00:30:00"),  # own offset
    ("2026-11-01 01:30:00Z", "Europe/Budapest", "2026-11-01 01:30:00"),
])
def test_times_both_paths(raw, tz, utc):
    expected = pd.Timestamp(utc, tz="UTC")
    assert _time.parse_time(raw, tz) == expected
    frame, rejected = _table.calls_from_fields([{"id": "a", "start_time": raw}], tz=tz)
    assert rejected == {}
    assert frame["start_time"].iloc[0] == expected
    assert str(frame["start_time"].dtype) == "datetime64[us, UTC]"


def test_time_out_of_range_is_a_parse_error_on_both_paths():
    # 9999-12-31 23:59 in New York is year 10000 in UTC: pandas raises
    # NotImplementedError, which must not escape a per-record parse (live path too)
    raw = "9999-12-31 23:59:59"
    with pytest.raises(CDRParseError, match="is not a time"):
        read_cdr(_doc(f"<start_time>{raw}</start_time>"), tz="America/New_York")
    frame, rejected = _table.calls_from_fields([{"id": "a", "start_time": raw}],
                                            tz="America/New_York")
    assert len(frame) == 0 and list(rejected) == [0]


@pytest.mark.parametrize("raw", ["2026", "2026-11", "2026-1-1", "2026-W45-1", "11/02/2026",
                                 "2026-11-02 09:0:00", "2026-11-02 9:00:00",
                                 "2026-11-02 09:00:00.", "2026-11-02 09:00:00,5",
                                 "2026-11-02t09:00:00", "2026-11-02 09:00:00+01"])
def test_partial_or_foreign_dates_are_refused_by_both_paths(raw):
    # the CDR format is YYYY-MM-DD hh:mm:ss[.SSS]; the batch path used to read "2026" and
    # "2026-11" as January 1st and "09:0:00" as 09:00 (pandas' ISO8601) while read_cdr
    # refused them, and read_cdr read week dates and "t"/"," forms pandas refuses
    with pytest.raises(CDRParseError, match="is not a time"):
        read_cdr(_doc(f"<start_time>{raw}</start_time>"))
    frame, rejected = _table.calls_from_fields([{"id": "a", "start_time": raw}])
    assert len(frame) == 0 and list(rejected) == [0]


def test_unknown_time_zone_is_one_clear_error():
    # read_cdr used to raise ZoneInfoNotFoundError (a KeyError) for a document with a
    # time, and to accept the typo silently for one without
    for doc in (_doc(""), _doc("<start_time>2026-11-02 09:00:00</start_time>")):
        with pytest.raises(ValueError, match="unknown time zone 'Europe/Budapets'; use"):
            read_cdr(doc, tz="Europe/Budapets")
    zone = _time.check_tz(ZoneInfo("Europe/Budapest"))  # a ZoneInfo gives its name
    assert zone == "Europe/Budapest"
    doc = _doc("<start_time>2026-07-01 12:00:00</start_time>")
    assert read_cdr(doc, tz=ZoneInfo(zone))["start_time"] == pd.Timestamp(
        "2026-07-01 10:00:00", tz="UTC")


def test_format_time_inverts_parse_time():
    moment = pd.Timestamp("2026-11-02 08:15:02.120", tz="UTC")
    text = _time.format_time(moment, "Europe/Budapest")
    assert text == "2026-11-02 09:15:02.120"
    assert _time.parse_time(text, "Europe/Budapest") == moment


# --------------------------------------------------------------------------- per record
# == vectorised, on random documents

_VALUES = {
    "start_time": st.sampled_from(["2026-11-02 09:15:02.120", "2026-11-02 09:15:02",
                                   "2026-10-25 02:30:00", "2026-03-29 02:30:00",
                                   "2026-10-25 02:55:00", "2026-10-25 01:59:00",
                                   "2026-11-02T09:00:00+01:00", "2026-11-02 09:00:00Z",
                                   "soon", "2026-13-45 00:00:00", "2026-11", "2026-W45-1"]),
    "end_time": st.sampled_from(["2026-11-02 09:20:00.001", "2026-11-02 09:15:02.120",
                                 "2026-10-25 02:59:59", "2026-10-25 02:05:00",
                                 "2026-10-25 03:10:00"]),
    "duration": st.sampled_from(["12.5", "0", "abc", "1e3", "1_000", "\u0661\u0662",
                                 "600", "3600.0000005", "-5", "inf", "nan", "1e300",
                                 "0.0000015"]),
    "direction_id": st.sampled_from(["0", "1", "2", "7", "PSTN In", "01"]),
    "cause_id": st.sampled_from(["0", "6", "500", "999", "Busy"]),
    "audio_codec_id": st.sampled_from(["2", "90", "17"]),
    "location": st.sampled_from(["NY", "LDN", "Győr"]),
    "ondemand": st.sampled_from(["true", "0", "maybe"]),
    "modality_id": st.sampled_from(PROTOCOL_MODALITIES),
    "source_caller_id": st.sampled_from(["1000", "+3612345"]),
    "ccdr_id": st.sampled_from(["k1", "k2"]),
    "call_id": st.just("foreign"),
    "site": st.just("other-site"),
    "direction": st.just("sideways"),
    "shared_item.id": st.just("s1"),
    "extra": st.sampled_from(["x", "y & z"]),
}


@st.composite
def _documents(draw):
    fields = {}
    if draw(st.integers(0, 5)):  # mostly with an id
        fields["id"] = draw(st.sampled_from(["a", "b", "c"]))
    for name, strategy in _VALUES.items():
        if draw(st.integers(0, 2)) == 0:
            fields[name] = draw(strategy)
    return fields


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_documents(), min_size=1, max_size=6),
       tz=st.sampled_from(["UTC", "Europe/Budapest"]), finished=st.booleans())
def test_per_record_equals_vectorised(rows, tz, finished):
    records, rejected_expected = [], set()
    for pos, fields in enumerate(rows):
        try:
            records.append(cdr.record_from_fields(fields, tz=tz, finished=finished))
        except CDRParseError:
            rejected_expected.add(pos)
    frame, rejected = _table.calls_from_fields(rows, tz=tz, finished=finished)
    assert set(rejected) == rejected_expected
    expected = _table.calls_frame(records)
    if finished and not records:  # a finished calls table has the flag, even empty
        expected = _table.coerce_calls(expected.assign(end_unknown=pd.Series([], dtype=bool)))
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected, check_exact=True)


@pytest.mark.parametrize("raw", ["1_000", "\u0661\u0662", "0x10", "1,5"])
def test_stated_duration_that_pandas_cannot_read_is_nan_on_both_paths(raw):
    # float() reads "1_000" and Arabic-Indic digits, pd.to_numeric does not: the per-record
    # path gave 1000.0 / 12.0 where the archive gave NaN
    frame, _ = _table.calls_from_fields([{"id": "a", "duration": raw}])
    assert pd.isna(cdr.record_from_fields({"id": "a", "duration": raw})["duration"])
    assert pd.isna(frame["duration"].iat[0])


def test_duration_is_the_correctly_rounded_difference_on_both_paths():
    fields = {"id": "a", "start_time": "2026-01-01 00:00:00", "end_time": "2026-01-01 00:00:31.952"}
    frame, _ = _table.calls_from_fields([fields])
    # 31952000 us / 1e6 rounds to the double nearest 31.952; 31952000 * 1e-6 does not
    assert cdr.record_from_fields(fields)["duration"] == 31.952
    assert frame["duration"].iat[0] == 31.952


def test_calls_table_schema():
    frame = _table.calls_frame([read_cdr(_doc("<location>NY</location>"))])
    assert list(frame.columns[:len(_schema.CALL_COLUMNS)]) == list(_schema.CALL_COLUMNS)
    assert str(frame["site"].dtype) == "category"
    assert str(frame["end_time"].dtype) == "datetime64[us, UTC]"
    assert frame["duration"].dtype == "float64"
    empty = _table.empty_calls()
    assert len(empty) == 0 and list(empty.columns) == list(_schema.CALL_COLUMNS)


# --------------------------------------------------------------------------- call ends


def _both(fields: dict[str, str], tz: str = "UTC") -> dict:
    """The per-record and the vectorised path's (start, end, duration, end_unknown),
    checked equal."""
    record = cdr.record_from_fields({"id": "a", **fields}, tz=tz, finished=True)
    frame, rejected = _table.calls_from_fields([{"id": "a", **fields}], tz=tz,
                                               finished=True)
    assert rejected == {}
    row = frame.iloc[0]
    got = {k: record[k] for k in ("start_time", "end_time", "duration", "end_unknown")}
    for name, value in got.items():
        assert (pd.isna(value) and pd.isna(row[name])) or value == row[name], name
    return got


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_cdrs_with_only_a_duration_get_an_end():
    # three CDRs with a start and a duration, no end_time: end = start + duration
    start = "2026-11-02 09:00:00"
    for seconds, end in (("120", "09:02:00"), ("90.5", "09:01:30.5"), ("0", "09:00:00")):
        got = _both({"start_time": start, "duration": seconds})
        assert got["end_time"] == _utc(f"2026-11-02 {end}")
        assert got["duration"] == float(seconds) and got["end_unknown"] is False
    # Budapest is UTC+1 in November: 09:00 local is 08:00 UTC, + 120 s = 08:02 UTC
    got = _both({"start_time": start, "duration": "120"}, tz="Europe/Budapest")
    assert got["end_time"] == _utc("2026-11-02 08:02:00")


@pytest.mark.parametrize("fields", [
    {"start_time": "2026-11-02 09:00:00"},                      # neither end nor duration
    {"start_time": "2026-11-02 09:00:00", "duration": "soon"},  # not a number
    {"start_time": "2026-11-02 09:00:00", "duration": "-5"},    # negative
    {"start_time": "2026-11-02 09:00:00", "duration": "inf"},
    {"start_time": "2026-11-02 09:00:00", "duration": "1e300"},  # past year 9999
    {"duration": "120"},                                        # no start to add it to
])
def test_end_unknown_when_nothing_gives_the_end(fields):
    got = _both(fields)
    assert got["end_unknown"] is True and got["end_time"] is pd.NaT


def test_end_unknown_only_for_finished_calls():
    # a live call's notification has no end yet: no end_unknown column at all
    assert "end_unknown" not in cdr.record_from_fields({"id": "a"})
    frame, _ = _table.calls_from_fields([{"id": "a"}])
    assert "end_unknown" not in frame.columns
    frame, _ = _table.calls_from_fields([{"id": "a", "end_unknown": "false"}],
                                        finished=True)
    assert frame["end_unknown"].tolist() == [True]  # a field of that name is ignored
    columns = list(frame.columns)
    assert columns[columns.index("end_time") + 1] == "end_unknown"  # DESIGN's order
    assert frame["end_unknown"].dtype == bool


# Europe/Budapest goes back from 03:00 CEST (UTC+2) to 02:00 CET (UTC+1) on
# 2026-10-25: local 02:00-03:00 happens twice, first at UTC+2, then at UTC+1.
@pytest.mark.parametrize("start,end,duration,utc_start,utc_end,seconds", [
    # the brief's call: 02:55 is 00:55 UTC (first reading, the default); 02:05 is
    # 00:05 or 01:05 UTC; 600 s after 00:55 is 01:05 -> 10 minutes, not -50
    ("02:55", "02:05", "600", "00:55", "01:05", 600.0),
    # no duration: the end reading that is not before the start
    ("02:55", "02:05", None, "00:55", "01:05", 600.0),
    # both in the hour, no duration, in order: both first readings, 40 minutes
    ("02:10", "02:50", None, "00:10", "00:50", 2400.0),
    # both in the hour, a duration of 100 min: 00:10 -> 01:50 (the hour went round)
    ("02:10", "02:50", "6000", "00:10", "01:50", 6000.0),
    # an ambiguous start, an end after the change (03:10 CET = 02:10 UTC), 40 min:
    # the start's second reading, 02:30 CET = 01:30 UTC
    ("02:30", "03:10", "2400", "01:30", "02:10", 2400.0),
    # the same without a duration: the start keeps its first reading (100 min)
    ("02:30", "03:10", None, "00:30", "02:10", 6000.0),
    # a start before the change (01:50 CEST = 23:50 UTC the day before) and an end in
    # the repeated hour with a duration of 75 min: 02:05 CET = 01:05 UTC
    ("01:50", "02:05", "4500", "-23:50", "01:05", 4500.0),
])
def test_a_call_across_the_repeated_autumn_hour(start, end, duration, utc_start,
                                               utc_end, seconds):
    fields = {"start_time": f"2026-10-25 {start}:00", "end_time": f"2026-10-25 {end}:00"}
    if duration is not None:
        fields["duration"] = duration
    got = _both(fields, tz="Europe/Budapest")
    day = "2026-10-24" if utc_start.startswith("-") else "2026-10-25"
    assert got["start_time"] == _utc(f"{day} {utc_start.lstrip('-')}")
    assert got["end_time"] == _utc(f"2026-10-25 {utc_end}")
    assert got["duration"] == seconds and got["end_unknown"] is False
    # read_cdr gives the same record
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    record = read_cdr(_doc(body), tz="Europe/Budapest")
    assert (record["start_time"], record["end_time"]) == (got["start_time"],
                                                          got["end_time"])


def _plain_or_odd_time():
    """Texts of the plain form (date, time to the second, fraction: the fast path's),
    many of them impossible, and the other forms the general path reads or refuses."""
    digits = st.integers
    plain = st.builds(
        lambda y, mo, d, h, mi, s, sep, frac: (f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:"
                                               f"{s:02d}{frac}"),
        digits(1, 9999) | st.sampled_from([2024, 2026]), digits(0, 13), digits(0, 32),
        digits(0, 25), digits(0, 61), digits(0, 61), st.sampled_from(["T", " "]),
        st.sampled_from(["", ".5", ".120", ".123456", ".1234567"]))
    # the nights clocks change in New York and London (a gap, a repeated hour)
    changes = st.sampled_from(["2026-03-08 02:30:00", "2026-11-01 01:30:00",
                               "2026-03-29T01:30:00", "2026-10-25 01:30:00.5"])
    odd = st.sampled_from(["2026-11-02 09:15:02Z", "2026-11-02T09:15:02+01:00",
                           " 2026-11-02 09:15:02", "20261102T091502", "2026-11-02",
                           "2026-11-02 09:15", "", "not a time"])
    return st.one_of(plain, changes, odd, st.none())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_plain_or_odd_time(), min_size=1, max_size=6),
       st.sampled_from(["UTC", "America/New_York", "Europe/London"]), st.booleans())
def test_plain_times_read_by_arrow_equal_the_general_path(texts, tz, as_object):
    raw = pd.Series(texts, dtype=object if as_object else "str")
    fast = _table._times_to_utc(raw, tz)
    real = _table._plain_times
    try:
        _table._plain_times = lambda raw: None
        general = _table._times_to_utc(raw, tz)
    finally:
        _table._plain_times = real
    pd.testing.assert_series_equal(fast[0], general[0], check_index_type=False)
    assert fast[1].tolist() == general[1].tolist()
    assert fast[2] == general[2]


def test_a_column_of_plain_times_takes_the_fast_path():
    raw = pd.Series(["2026-11-02 09:15:02", None, "2026-11-02T09:15:02.5"], dtype="str")
    naive = _table._plain_times(raw)
    assert naive is not None and str(naive.dtype) == "datetime64[us]"
    assert naive.tolist()[0::2] == [pd.Timestamp("2026-11-02 09:15:02"),
                                    pd.Timestamp("2026-11-02 09:15:02.5")]
    assert naive.isna().tolist() == [False, True, False]
    for odd in ("2026-02-30 09:00:00", "2026-11-02 09:15:02Z", " 2026-11-02 09:15:02"):
        assert _table._plain_times(pd.Series([*raw, odd], dtype="str")) is None
