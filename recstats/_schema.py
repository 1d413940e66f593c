"""The CDR field vocabulary: field names, enum tables and the calls-table columns.

Plain data, no pandas and no XML: :mod:`recstats.cdr` (one record), :mod:`recstats._table`
(the vectorised table builder), the capture buffers and the archive reader share it.
"""

from __future__ import annotations

#: Enum tables from the vendor's CDR documentation (codes as strings, as they appear).
CAUSES: dict[str, str] = {
    "0": "Normal", "1": "Source disconnected", "2": "Destination disconnected",
    "3": "Hold", "4": "Transfer", "5": "Cancelled", "6": "Busy", "7": "Not found",
    "8": "Error", "13": "Conference", "14": "Call park", "15": "Join",
    "28": "Direct transfer", "60": "Line change", "80": "Timeout",
    "81": "Forced termination", "82": "Manual termination", "83": "Program termination",
    "84": "Video escalation", "500": "Undefined",
}
AUDIO_CODECS: dict[str, str] = {
    "1": "Non-standard", "2": "G.711 A-law 64k", "3": "G.711 A-law 56k",
    "4": "G.711 µ-law 64k", "5": "G.711 µ-law 56k", "6": "G.722 64k", "7": "G.722 56k",
    "8": "G.722 48k", "9": "G.723.1", "10": "G.728", "11": "G.729", "12": "G.729A",
    "13": "IS11172", "14": "IS13818", "15": "G.729B", "16": "G.729AB", "18": "GSM FR",
    "19": "GSM HR", "20": "GSM EFR", "25": "Wideband 256k", "32": "Data 64k",
    "33": "Data 56k", "80": "GSM", "81": "ActiveVoice", "82": "G.726 32k",
    "83": "G.726 24k", "84": "G.726 16k", "90": "iLBC 20ms", "91": "iLBC 30ms",
}
#: Only 0 = Internal is documented; 1 and 2 are recstats' choice (override per call).
DIRECTIONS: dict[str, str] = {"0": "Internal", "1": "Inbound", "2": "Outbound"}

MODALITIES = ("voice", "video", "screen", "share", "im", "file_share", "poll",
              "whiteboard", "sms")

#: Source field name -> calls-table column, for fields that are renamed.
RENAMES: dict[str, str] = {
    "id": "call_id", "ccdr_id": "call_id", "location": "site",
    "source_caller_id": "caller", "destination_caller_id": "callee",
    "source_name": "caller_name", "destination_name": "callee_name",
    "modality_id": "modality",
}
#: Raw code field -> (decoded column, table). The raw code stays under its own name.
ENUMS: dict[str, tuple[str, dict[str, str]]] = {
    "direction_id": ("direction", DIRECTIONS),
    "cause_id": ("cause", CAUSES),
    "audio_codec_id": ("audio_codec", AUDIO_CODECS),
}
TIME_FIELDS = ("start_time", "end_time")
BOOLEAN_FIELDS = ("ondemand", "conference", "manual", "do_not_delete", "secondary")
TRUE_TEXTS = frozenset({"true", "1", "yes"})
FALSE_TEXTS = frozenset({"false", "0", "no"})

#: The calls table's fixed columns, in order; every other field follows, sorted by name.
CALL_COLUMNS: tuple[str, ...] = (
    "call_id", "site", "start_time", "end_time", "duration", "caller", "callee",
    "caller_name", "callee_name", "direction", "direction_id", "modality", "cause",
    "cause_id", "audio_codec", "audio_codec_id",
)
#: Columns only the archive reader fills.
ARCHIVE_COLUMNS: tuple[str, ...] = ("media_path", "cdr_path")
#: Extra fields named like a column a documented field fills (``site``, ``call_id``, ...):
#: they fill that column only when the documented field is absent, whatever the order.
SHADOWED = frozenset(RENAMES.values())
CATEGORY_COLUMNS = ("site", "direction", "modality", "cause", "audio_codec")
TIME_DTYPE = "datetime64[us, UTC]"

