"""Kong 3.9/3.10 Datakit (the Wasm filter), run as those versions ran it (spec §9).

Its configs differ from 3.11+ in ways that silently change results: list-form `inputs`, ports that
stay empty, jq variables with `.` as null, call timeouts in seconds, non-2xx answers that are not
errors, header sets replaced instead of merged. This package keeps those semantics apart from the
current engine; the proxy adapter drives both through the same small surface.
"""
